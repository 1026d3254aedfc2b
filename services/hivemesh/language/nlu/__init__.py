"""Natural-language understanding: encoders, the trained intent router, its training and evaluation."""
