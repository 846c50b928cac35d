"""Behavior-conditioned SFT (the paper's third use): records in, a fine-tuned model folder out.

Nothing here imports torch, TRL or PEFT at import time; :func:`.train.train_records` loads them
(the ``sft`` extra).
"""
