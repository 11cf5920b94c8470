"""Training recipes of the classic models: gmm, hmm, naive-bayes."""
