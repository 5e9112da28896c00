"""Data side of the toolkit: rendering, audio I/O, mel spectrograms, TFRecords, datasets."""
import os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) hides the toolkit's own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
