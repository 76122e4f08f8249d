"""Python source as the context engine reads it: decoding, piecewise parsing, chunking.

* `pysource`: parse a module in pieces (one bad statement does not hide the rest).
* `chunker`: structure-aware chunks of a module (skeletons, hashes, fingerprints).
* `focus`: the skeleton of the class a hover is about (its fields and constructor kept).
"""
