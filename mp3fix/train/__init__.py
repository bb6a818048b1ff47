"""Training code (torch only): data set builder, generator, critic, losses, export.

Nothing in the runtime imports this package; it needs the ``train`` extra.
"""
