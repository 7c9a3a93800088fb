"""Adapters between clonestore and the frameworks AI applications are built with.

Each module needs its framework installed (an extra): :mod:`clonestore.integrations.langchain`
(``pip install 'clonestore[langchain]'``).
"""
