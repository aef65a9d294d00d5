"""One command per figure of the paper, model and networks side by side (SPEC §4)."""
