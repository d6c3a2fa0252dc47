# Licensed under the Apache License, Version 2.0.
"""Triggers that poll, from the triggerer, the jobs the resumable operators submit (``deferrable=True``)."""
