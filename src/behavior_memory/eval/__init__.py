"""Measuring the paper's uses: answer checking, behavior-conditioned inference, self-improvement, SFT data."""
