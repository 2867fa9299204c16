"""TruLayer alerter."""
