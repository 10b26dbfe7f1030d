"""The explorer: a Streamlit app over the pipeline's outputs or a deployable bundle.

:mod:`neurovision.app.sources` reads results (a pipeline's outputs or a bundle, behind one
interface; no Streamlit); :mod:`neurovision.app.views` turns them into tables and plot data;
:mod:`neurovision.app.layout` writes down both layouts; :mod:`neurovision.app.bundle` writes
the bundle the ``bundle`` stage exports; ``streamlit_app.py`` is the page (start it with
``neurovision app``).
"""
