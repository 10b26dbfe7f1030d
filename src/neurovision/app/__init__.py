"""The explorer: a Streamlit app over the pipeline's outputs or a deployable bundle.

:mod:`neurovision.app.data` loads results (pure, tested, no Streamlit);
:mod:`neurovision.app.bundle` writes the bundle the ``bundle`` stage exports;
``streamlit_app.py`` is the page (start it with ``neurovision app``).
"""
