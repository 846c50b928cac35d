"""The task lifecycle every integration shares: record steps, save one trace, count shown and cited."""
