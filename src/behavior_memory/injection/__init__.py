"""Getting behaviors into a prompt: fetch them within a time budget, render the block within a token budget."""
