"""What the model is told about the user's variables."""
