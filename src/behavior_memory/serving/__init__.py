"""Running a vLLM server: the command line for a GPU, and the embedded CPU build with SmolLM2."""
