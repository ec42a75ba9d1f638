"""The staged rollout: which automation stage a practice is in, what each stage turns on, what the
next stage would have done (from the shadow log the edges keep), and the manager's moves between
stages. `stages` holds the rules, `views` the page."""
