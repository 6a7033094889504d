"""The paper's PointMass: a 2-D point reaching a goal, its waypoint demonstrator, fleet and evaluation."""
