"""Any gymnasium env as a domain: the user's env id, a scripted demonstrator of theirs, and conventions
(LeRobot's `features_map`) for which observation keys hold the state and the goal."""
