"""What a training run saves and what is loaded back from it: the run's settings
(`config.json`), its checkpoint folders, and model folders such as the shipped one.

Written by training and read by training and inference; imports solver2 (the memory bank a
checkpoint holds), model, data, loss and errors, nothing of training, inference or reporting.
"""
