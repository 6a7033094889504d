"""Stage 2, Self-Improvement: learned rewards, fleet rollouts and on-policy REINFORCE (docs/method.md, "Stage
2: Algorithm 1")."""
