"""Training: optimisers, the Trainer, learning-rate schedules, recipes,
augmentation and gradient checks."""
from .gradcheck import gradient_check, numerical_gradient, relative_error
from .optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from .recipes import RECIPES, Recipe
from .schedules import SCHEDULES, cosine_lr
from .trainer import Trainer

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "get_optimizer",
           "Trainer", "Recipe", "RECIPES", "SCHEDULES", "cosine_lr", "gradient_check",
           "numerical_gradient", "relative_error"]
