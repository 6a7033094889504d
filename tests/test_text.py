"""Known answers for the word tokenizer and contract tests for the text encoder."""

from __future__ import annotations

import numpy as np
import torch
from torch.testing import assert_close

from siefm.envs.tabletop import TabletopConfig, TabletopEnv
from siefm.models.text import TextEncoder, WordTokenizer, tabletop_vocabulary, words


def test_words_lowercase_and_drop_punctuation() -> None:
    assert words("Push the Red-Moon, slightly up.") == ["push", "the", "red", "moon", "slightly", "up"]


def test_encode_known_answer() -> None:
    tokenizer = WordTokenizer(["push", "the", "red", "moon"], max_length=6)
    assert tokenizer.vocabulary[:2] == ["<pad>", "<unk>"] and len(tokenizer) == 6
    ids = tokenizer.encode(["push the red moon", "push the banana", ""])
    expected = torch.tensor([[2, 3, 4, 5, 0, 0], [2, 3, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    assert torch.equal(ids, expected)  # unknown words map to 1, padding is 0


def test_long_texts_are_cut() -> None:
    tokenizer = WordTokenizer(["a"], max_length=3)
    assert tokenizer.encode(["a a a a a"]).tolist() == [[2, 2, 2]]


def test_every_tabletop_instruction_is_in_the_vocabulary() -> None:
    tokenizer = WordTokenizer(tabletop_vocabulary())
    env = TabletopEnv(TabletopConfig())
    for seed in range(60):
        instruction = env.reset(seed=seed)[0]["instruction"]
        ids = tokenizer.encode([instruction])[0]
        assert (ids != 1).all(), instruction  # no unknown word
        assert (ids != 0).sum() == len(words(instruction))  # fits in max_length


def test_encoder_ignores_padding_and_separates_instructions() -> None:
    torch.manual_seed(0)
    tokenizer = WordTokenizer(tabletop_vocabulary(), max_length=12)
    encoder = TextEncoder(len(tokenizer), dim=16)
    ids = tokenizer.encode(["push the red moon up", "push the blue cube down"])
    out = encoder(ids)
    assert out.shape == (2, 16)
    longer = WordTokenizer(tabletop_vocabulary(), max_length=20).encode(["push the red moon up"])
    assert_close(encoder(longer)[0], out[0])  # more padding, same encoding
    assert not np.allclose(out[0].detach().numpy(), out[1].detach().numpy())
