"""What a net changes in the plain chain of its layers, for speed only.

Each rewrite leaves every value and gradient as it was (the tests compare
with and without), and is read off the layer types, not the classes.
"""

__all__ = ["prepare"]


def prepare(layers, types):
    """Set up ``layers`` (name -> layer, in order) for a net and return
    ``(sequence, kind_of, inference)``: the order forward runs them in, each
    layer's type by ``id(layer)``, and the test-time pass as (layer, fuse the
    ReLU after it?) pairs, the fused ReLUs left out."""
    names = list(layers)
    kind_of = {id(layers[name]): types[name] for name in names}
    convs = [layers[n] for n in names if types[n].kind == "conv"]
    # Nobody asks for the gradient of the input images; skipping it in the
    # first convolution saves a matrix product and a col2im per step.
    if names and types[names[0]].kind == "conv":
        layers[names[0]].needs_input_grad = False
    # Inner convolutions get inputs nobody else holds: no private copy needed.
    for layer in convs:
        if layer is not layers[names[0]]:
            layer.input_is_private = True
    # A ReLU right after a layer that returns a fresh array may overwrite it
    # (and, in backward, the fresh gradient it is handed).
    for before, name in zip(names, names[1:]):
        if types[name].kind == "relu" and types[before].fresh_output:
            layers[name].inplace = True
    # A ReLU right before a max pooling runs after it: ReLU is monotone, so
    # max(relu(x)) = relu(max(x)) and every gradient is unchanged (a window
    # whose maximum is <= 0 passes no gradient either way), but the ReLU then
    # sees a quarter of the values (about a tenth of SimpleConvNet's step:
    # benchmarks/README.md).
    sequence = [layers[n] for n in names]
    for i in range(len(sequence) - 1):
        relu, pool = sequence[i], sequence[i + 1]
        if (kind_of[id(relu)].kind == "relu" and kind_of[id(pool)].kind == "pool"
                and pool.mode == "max"):
            sequence[i], sequence[i + 1] = pool, relu
    # At test time a convolution followed by a ReLU writes max(out, 0) in the
    # same pass (the direct kernel's output copy).
    inference = []
    for layer in sequence:
        if (kind_of[id(layer)].kind == "relu" and inference and inference[-1][1] is False
                and kind_of[id(inference[-1][0])].fuses_relu):
            inference[-1] = (inference[-1][0], True)
        else:
            inference.append((layer, False))
    return sequence, kind_of, inference
