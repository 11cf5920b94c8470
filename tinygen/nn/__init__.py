"""Neural-network building blocks, with PyTorch's names: ``tinygen.nn`` holds the
modules, ``tinygen.nn.functional`` (F) their stateless functions, ``tinygen.nn.init``
the initialisers."""
from . import functional, init
from .activation import ELU, LeakyReLU, ReLU, Sigmoid, SiLU, Softplus, Tanh
from .conv import Conv2d, ConvTranspose2d
from .linear import Embedding, Identity, Linear
from .module import Module, ModuleList, Parameter, Sequential
from .norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .pooling import AvgPool2d, MaxPool2d, Upsample
from .reshape import Dropout, Flatten, Unflatten

__all__ = [
    "functional", "init", "Module", "ModuleList", "Parameter", "Sequential",
    "Identity", "Linear", "Embedding", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d",
    "Upsample", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "Dropout", "Flatten",
    "Unflatten", "ReLU", "LeakyReLU", "SiLU", "Tanh", "Sigmoid", "Softplus", "ELU",
]
