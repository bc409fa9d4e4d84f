"""
im2col, pictured
================

Placeholder.
"""
import fastconv
print(fastconv.__version__)
