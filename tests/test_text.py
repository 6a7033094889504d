"""Known answers for the word tokenizer and contract tests for the text encoder."""

from __future__ import annotations

import numpy as np
import torch
from torch.testing import assert_close

from siefm.domains.tabletop.env import TabletopConfig, TabletopEnv
from siefm.domains.tabletop.tasks import vocabulary as tabletop_vocabulary
from siefm.models.text import TextEncoder, WordTokenizer, align_to_end, words


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


def test_encoder_tells_instructions_and_word_order_apart() -> None:
    torch.manual_seed(0)
    tokenizer = WordTokenizer(tabletop_vocabulary(), max_length=12)
    encoder = TextEncoder(len(tokenizer), max_length=12, dim=16)
    texts = [
        "push the red moon to the blue cube",
        "push the blue cube to the red moon",
        "push the red moon up",
    ]
    out = encoder(tokenizer.encode(texts)).detach().numpy()
    assert out.shape == (3, 16)
    # A bag of words would give the first two the same code: the encoder must know which block moves.
    assert not np.allclose(out[0], out[1]) and not np.allclose(out[0], out[2])


def test_padding_contributes_nothing() -> None:
    torch.manual_seed(0)
    encoder = TextEncoder(10, max_length=4, dim=8)
    ids = torch.tensor([[2, 3, 0, 0]])
    first_layer = encoder.project[0]
    expected = torch.relu(
        first_layer(
            torch.cat(
                [
                    encoder.embedding.weight[2],
                    encoder.embedding.weight[3],
                    torch.zeros(2 * encoder.embedding.embedding_dim),
                ]
            )
        )
    )
    assert_close(encoder(ids)[0], expected)
    assert torch.count_nonzero(encoder.embedding(torch.tensor([0]))) == 0


def test_align_to_end_known_answer() -> None:
    ids = torch.tensor([[5, 6, 7, 0, 0], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]])
    expected = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]])
    assert torch.equal(align_to_end(ids), expected)
    # Token states (B, L, D): the same shift, with the real tokens given.
    states = torch.arange(1.0, 31.0).view(3, 5, 2) * (ids != 0).unsqueeze(-1)
    aligned = align_to_end(states, ids != 0)
    assert torch.equal(aligned[0, 2:], states[0, :3]) and torch.equal(aligned[0, :2], torch.zeros(2, 2))
    assert torch.equal(aligned[1], states[1]) and torch.equal(aligned[2], torch.zeros(5, 2))


def test_both_ends_gives_the_last_name_one_place_whatever_precedes_it() -> None:
    torch.manual_seed(0)
    tokenizer = WordTokenizer(tabletop_vocabulary(), max_length=16)
    encoder = TextEncoder(len(tokenizer), max_length=16, dim=8, both_ends=True)
    ids = tokenizer.encode(["push the red moon to the blue cube", "push the red moon next to the blue cube"])
    word_dim = encoder.embedding.embedding_dim
    width = 16 * word_dim
    laid_out = [encoder.embedding(w).flatten(1) for w in (ids, align_to_end(ids))]
    # From the start the reference block's words sit one place apart; from the end they coincide.
    last_two = slice(width - 2 * word_dim, width)
    assert not torch.equal(laid_out[0][0], laid_out[0][1])
    assert torch.equal(laid_out[1][0, last_two], laid_out[1][1, last_two])
    assert encoder(ids).shape == (2, 8)
    assert encoder.project[0].in_features == 2 * width
