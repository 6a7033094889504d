"""Stage 2, Self-Improvement: learned rewards, fleet rollouts and on-policy REINFORCE (PAPER.md §4)."""
