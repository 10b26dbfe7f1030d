"""The vision side: OpenCLIP image (and text) embeddings of the THINGS images.

``encoder`` builds the model and its evaluation transform (weights) and how it runs
(precision, device), ``features`` resolves layers to blocks and runs the one pass that
serves them all (choosing the final embedding's forward path), ``cache`` keeps finished
chunks of embeddings, ``runtime`` holds the CPU thread settings, ``embed`` runs the batched,
resumable embedding loop, and ``text`` embeds concept names.
"""
