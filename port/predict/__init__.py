"""`python -m port.predict` / `psanet-predict`: segment your own images, folders and videos (see `port.predict.cli`)."""
