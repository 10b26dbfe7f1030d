"""The vision side: OpenCLIP image (and text) embeddings of the THINGS images.

``encoder`` builds the model and its evaluation transform (weights, precision), ``forward``
chooses the forward pass, ``cache`` keeps finished chunks of embeddings, ``runtime`` holds
the CPU thread settings, and ``embed`` runs the batched, resumable embedding loop.
"""
