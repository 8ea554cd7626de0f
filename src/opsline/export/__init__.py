"""What a trained model is exported as: the directory the registry stores and the server loads."""
