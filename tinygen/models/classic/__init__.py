"""The classic generative models of the notes, before deep learning.

    gmm.py          Gaussian mixtures fitted by EM (Dempster, Laird & Rubin 1977)
    hmm.py          hidden Markov models: forward, backward, Viterbi, Baum-Welch
    bayesnet.py     Bayesian networks: ancestral sampling, exact and approximate inference
    naive_bayes.py  naive Bayes against logistic regression (Ng & Jordan 2002)
"""
