"""Data: CelebA-layout readers, the SynthFaces renderer/exporter, the store and the DataModule."""
