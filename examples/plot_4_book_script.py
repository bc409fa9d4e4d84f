"""
The book's chapter 7 script, on fastconv
========================================

``ch07/train_convnet.py`` of *Deep Learning from Scratch* with its three imports
switched to fastconv and nothing else changed but the amount of data and
epochs (the book's script trains 20 epochs on all 60,000 images; its own
comment suggests 5,000 and 1,000 when that takes too long). The parameters
are saved as ``.npz`` rather than a pickle.

The book's unchanged file runs too, from the book's folder:
``python -m fastconv.book ch07/train_convnet.py`` (:doc:`/from_the_book`).
"""
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from fastconv import SimpleConvNet, Trainer, load_mnist  # the three imports that change

from _data import data_dir

(x_train, t_train), (x_test, t_test) = load_mnist(flatten=False, data_dir=data_dir(),
                                                  download=False)

# The book's "reduce the data if this takes too long", a little smaller still.
x_train, t_train = x_train[:3000], t_train[:3000]
x_test, t_test = x_test[:1000], t_test[:1000]

max_epochs = 2

network = SimpleConvNet(input_dim=(1, 28, 28),
                        conv_param={'filter_num': 30, 'filter_size': 5, 'pad': 0, 'stride': 1},
                        hidden_size=100, output_size=10, weight_init_std=0.01)

trainer = Trainer(network, x_train, t_train, x_test, t_test,
                  epochs=max_epochs, mini_batch_size=100,
                  optimizer='Adam', optimizer_param={'lr': 0.001},
                  evaluate_sample_num_per_epoch=1000)
trainer.train()

# Saving the parameters (.npz, loaded with allow_pickle=False)
path = os.path.join(tempfile.mkdtemp(), "params.npz")
network.save_params(path)
print("Saved Network Parameters!")

# Drawing the graph
x = np.arange(max_epochs)
plt.plot(x, trainer.train_acc_list, marker='o', label='train')
plt.plot(x, trainer.test_acc_list, marker='s', label='test')
plt.xlabel("epochs")
plt.ylabel("accuracy")
plt.ylim(0, 1.0)
plt.legend(loc='lower right')
plt.show()
