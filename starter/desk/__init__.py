"""The agent desk and the customer's ticket page: web pages served by the API process (see app.py)."""
