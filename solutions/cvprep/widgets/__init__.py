"""The book's visualisations: one module per figure.

Each module has a pure builder ``figure(...) -> plotly.graph_objects.Figure`` whose
slider steps or animation frames are computed in Python, so the figure stays
interactive on the static site, and ``explorer(...) -> ipywidgets.Widget`` for
JupyterLab, which redraws the same figure when a control changes.
"""
