"""The management API's own parts: response models, error answers, the request guard, the resolver.

`functions/api/app.py` holds only the routes; everything they share is here.
"""
