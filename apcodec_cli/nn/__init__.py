"""The signal path: hyper-parameters, spectra, blocks, causal layers, quantizer, model.

Pure torch modules and functions; imports nothing else of the package.
"""
