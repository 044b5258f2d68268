"""Authentication of sources: parameter models, `requests` authenticators and their builder."""
