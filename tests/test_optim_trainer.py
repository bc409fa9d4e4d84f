"""Optimisers against hand-written update rules (and torch.optim), the Trainer's
bookkeeping with a spy network, and a short real training run."""
import importlib.util
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import running_on
from fastconv import functional as F
from fastconv._testing import last_team_size
from fastconv.nn import SimpleConvNet
from fastconv.train.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer
from fastconv.train.trainer import Trainer

# --- optimisers -------------------------------------------------------------------------

SHAPES = {"W1": (3, 2), "b1": (2,)}


def _run(optimizer, steps=5, dtype=np.float64, seed=0):
    """Params and the gradients fed to each step, and the params after all steps."""
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    start = {k: v.copy() for k, v in params.items()}
    grads = [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
             for _ in range(steps)]
    arrays = dict(params)
    for g in grads:
        optimizer.update(params, g)
    assert all(params[k] is arrays[k] for k in params)  # in place
    return start, grads, params


def _by_hand(rule, start, grads):
    """Apply ``rule(p, g, state, step) -> p`` to each key separately."""
    out = {}
    for k, p in start.items():
        state = {}
        for step, g in enumerate(grads, 1):
            p = rule(p, g[k], state, step)
        out[k] = p
    return out


def sgd_rule(lr):
    return lambda p, g, s, i: p - lr * g


def momentum_rule(lr, mu):
    # PyTorch's form: a buffer of summed gradients, scaled by lr when applied.
    def rule(p, g, s, i):
        s["buf"] = mu * s.get("buf", 0) + g
        return p - lr * s["buf"]
    return rule


def nesterov_rule(lr, mu):
    def rule(p, g, s, i):
        s["buf"] = mu * s.get("buf", 0) + g
        return p - lr * (g + mu * s["buf"])
    return rule


def adagrad_rule(lr, eps):
    def rule(p, g, s, i):
        s["sum"] = s.get("sum", 0) + g ** 2
        return p - lr * g / (np.sqrt(s["sum"]) + eps)
    return rule


def rmsprop_rule(lr, rho, eps):
    def rule(p, g, s, i):
        s["avg"] = rho * s.get("avg", 0) + (1 - rho) * g ** 2
        return p - lr * g / (np.sqrt(s["avg"]) + eps)
    return rule


def adam_rule(lr, b1, b2, eps):
    # The textbook form with bias-corrected moments; the book's eps, added to the
    # uncorrected sqrt(v), is eps / sqrt(1 - b2**i) here.
    def rule(p, g, s, i):
        s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0) + (1 - b2) * g ** 2
        m_hat, v_hat = s["m"] / (1 - b1 ** i), s["v"] / (1 - b2 ** i)
        return p - lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2 ** i))
    return rule


CASES = [
    (SGD(), sgd_rule(0.01)),
    (SGD(lr=0.3), sgd_rule(0.3)),
    (Momentum(), momentum_rule(0.01, 0.9)),
    (Momentum(lr=0.2, momentum=0.5), momentum_rule(0.2, 0.5)),
    (Nesterov(), nesterov_rule(0.01, 0.9)),
    (Nesterov(lr=0.2, momentum=0.7), nesterov_rule(0.2, 0.7)),
    (AdaGrad(), adagrad_rule(0.01, 1e-7)),
    (AdaGrad(lr=0.5), adagrad_rule(0.5, 1e-7)),
    (RMSprop(), rmsprop_rule(0.01, 0.99, 1e-7)),
    (RMSprop(lr=0.1, decay_rate=0.9), rmsprop_rule(0.1, 0.9, 1e-7)),
    (Adam(), adam_rule(0.001, 0.9, 0.999, 1e-7)),
    (Adam(lr=0.1, beta1=0.8, beta2=0.99), adam_rule(0.1, 0.8, 0.99, 1e-7)),
]


@pytest.mark.parametrize("optimizer,rule", CASES, ids=[repr(o) for o, _ in CASES])
def test_optimizer_matches_its_rule(any_backend, optimizer, rule):
    optimizer = type(optimizer)(**{k: v for k, v in vars(optimizer).items()
                                   if isinstance(v, float)})  # fresh state per backend
    start, grads, params = _run(optimizer)
    expected = _by_hand(rule, start, grads)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"])
def test_optimizers_keep_float32(name):
    optimizer = get_optimizer(name, lr=0.1)
    rng = np.random.default_rng(1)
    params = {"W": rng.standard_normal((3, 3)).astype(np.float32)}
    for grad_dtype in (np.float32, np.float64):  # float64 gradients are cast, not spread
        optimizer.update(params, {"W": rng.standard_normal((3, 3)).astype(grad_dtype)})
        assert params["W"].dtype == np.float32
    for state in vars(optimizer).values():
        if isinstance(state, dict):
            assert all(v.dtype == np.float32 for v in state.values())


def test_defaults_are_the_books():
    assert SGD().lr == 0.01
    assert (Momentum().lr, Momentum().momentum) == (0.01, 0.9)
    assert (Nesterov().lr, Nesterov().momentum) == (0.01, 0.9)
    assert AdaGrad().lr == 0.01
    assert (RMSprop().lr, RMSprop().decay_rate) == (0.01, 0.99)
    assert (Adam().lr, Adam().beta1, Adam().beta2) == (0.001, 0.9, 0.999)
    assert repr(Adam()) == "Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-07)"


def test_get_optimizer():
    assert type(get_optimizer("adam")) is Adam
    assert type(get_optimizer("RMSPROP", lr=0.5)) is RMSprop
    assert get_optimizer("Momentum", lr=0.5, momentum=0.1).momentum == 0.1
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'.*SGD"):
        get_optimizer("adamw")


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop"])
def test_optimizers_match_torch(name):
    torch = pytest.importorskip("torch")
    ours = get_optimizer(name, lr=0.05)
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal((4, 3))
    p = torch.tensor(p0.copy(), requires_grad=True)
    theirs = {
        "SGD": lambda: torch.optim.SGD([p], lr=0.05),
        "Momentum": lambda: torch.optim.SGD([p], lr=0.05, momentum=0.9),
        "Nesterov": lambda: torch.optim.SGD([p], lr=0.05, momentum=0.9, nesterov=True),
        "AdaGrad": lambda: torch.optim.Adagrad([p], lr=0.05, eps=1e-7),
        "RMSprop": lambda: torch.optim.RMSprop([p], lr=0.05, alpha=0.99, eps=1e-7),
    }[name]()
    params = {"p": p0.copy()}
    for _ in range(6):
        g = rng.standard_normal((4, 3))
        ours.update(params, {"p": g})
        p.grad = torch.tensor(g)
        theirs.step()
    np.testing.assert_allclose(params["p"], p.detach().numpy(), rtol=1e-12)


# --- against the book's own common/optimizer.py -----------------------------------------
#
# The book's optimisers take whatever numbers a dict holds: ch06/optimizer_compare_naive.py
# optimises two Python floats. Its code is the oracle here, imported from a copy of
# ../shared/book (test data: read, never copied into fastconv).

BOOK = Path(__file__).resolve().parents[2] / "shared" / "book"
NAMES = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]
# Same operations in the same order in IEEE double, each correctly rounded (numpy's
# + - * / sqrt, and optim.c is built with -ffp-contract=off): the same bits. Only
# Nesterov is written differently (see _nesterov_bound).
SAME_BITS = ["SGD", "Momentum", "AdaGrad", "RMSprop", "Adam"]


@pytest.fixture(scope="module")
def book_optimizer(tmp_path_factory):
    """The book's common/optimizer.py, imported from a temporary copy under its own name."""
    source = BOOK / "common" / "optimizer.py"
    if not source.is_file():
        pytest.fail(f"the book's repository is not at {BOOK} (see ../shared/book)")
    copy = tmp_path_factory.mktemp("book_common") / "optimizer.py"
    shutil.copyfile(source, copy)
    spec = importlib.util.spec_from_file_location("fastconv_tests_books_optimizer", copy)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nesterov_bound(lr, mu, p0, grads):
    """What rounding can explain between the book's Nesterov step
    ``p += mu*mu*v; p -= (1+mu)*lr*g; v = mu*v - lr*g`` and fastconv's
    ``v = mu*v - lr*g; p += mu*v - lr*g``: the same value in exact arithmetic
    and the same v bit for bit, so the p's differ by the roundings of each
    step's few terms (at most 8 of eps times their magnitude), which add up."""
    eps = np.finfo(np.float64).eps
    p, v = np.abs(np.asarray(p0, np.float64)), np.zeros(np.shape(p0))
    bound = np.zeros(np.shape(p0))
    for g in grads:
        g = np.asarray(g, np.float64)
        step = mu * mu * np.abs(v) + (1 + mu) * np.abs(lr * g)
        bound += 8 * eps * (p + step)
        p, v = p + step, mu * v - lr * g
    return bound + np.finfo(np.float64).tiny


# (kind, how the test holds the value, the float64 value the book's code is fed)
KINDS = {
    "python float": (float, float),
    "python int": (int, float),
    "numpy float64": (np.float64, float),
    "0-d float64 array": (lambda v: np.array(v, np.float64), lambda v: np.array(v, np.float64)),
    "0-d int array": (lambda v: np.array(int(v)), lambda v: np.array(float(int(v)))),
    "float64 array": (lambda v: np.array(v, np.float64), lambda v: np.array(v, np.float64)),
    "int array": (lambda v: np.array(v, np.int64), lambda v: np.array(v, np.float64)),
}


@st.composite
def _problem(draw, kind):
    """Initial values, the gradients of a few steps and a learning rate for ``kind``."""
    shape = (3,) if kind.endswith(" array") and not kind.startswith("0-d") else ()
    n = int(np.prod(shape))
    number = (st.integers(-1000, 1000) if "int" in kind
              else st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False))
    value = draw(st.lists(number, min_size=n, max_size=n)) if shape else draw(number)
    grad = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
    steps = draw(st.integers(1, 6))
    if shape:
        grads = [np.array(draw(st.lists(grad, min_size=n, max_size=n))) for _ in range(steps)]
    else:
        grads = [draw(grad) for _ in range(steps)]  # Python floats, as the naive script's
    return value, grads, draw(st.floats(1e-4, 2.0))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_optimizers_take_the_numbers_the_books_take(book_optimizer, name, kind, data):
    value, grads, lr = data.draw(_problem(kind))
    ours_as, books_as = KINDS[kind]
    held = ours_as(value)
    params = {"p": held, "q": np.array([0.5, -2.0])}  # a float64 array beside it, in place
    books = {"p": books_as(value), "q": np.array([0.5, -2.0])}
    q = params["q"]
    ours, theirs = get_optimizer(name, lr=lr), getattr(book_optimizer, name)(lr=lr)
    for g in grads:
        ours.update(params, {"p": g, "q": np.ones(2)})
        theirs.update(books, {"p": g, "q": np.ones(2)})
    assert list(params) == ["p", "q"] and params["q"] is q
    starts = {"p": (books_as(value), grads),
              "q": (np.array([0.5, -2.0]), [np.ones(2)] * len(grads))}
    for key, (start, fed) in starts.items():
        got, want = np.asarray(params[key], np.float64), np.asarray(books[key], np.float64)
        if name in SAME_BITS:
            np.testing.assert_array_equal(got, want)
        else:
            bound = _nesterov_bound(lr, 0.9, start, fed)
            assert np.all(np.abs(got - want) <= bound), (key, got, want, bound)
    # What the dict then holds: a float64 array is updated in place (a layer's
    # reference sees it); a number becomes a float (numpy's float64, a float
    # subclass); an integer array, which the book's in-place update refuses,
    # is replaced by its float64 update and left as it was.
    if isinstance(held, np.ndarray) and held.dtype == np.float64:
        assert params["p"] is held
    elif isinstance(held, np.ndarray):
        assert params["p"] is not held and params["p"].dtype == np.float64
        assert params["p"].shape == held.shape
        np.testing.assert_array_equal(held, ours_as(value))
    else:
        assert isinstance(params["p"], float) and not isinstance(params["p"], np.ndarray)


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_compare_naive_follows_the_books_paths(book_optimizer, name):
    """ch06/optimizer_compare_naive.py: a dict of two Python floats, 30 steps of each
    optimiser from (-7, 2) on f = x**2/20 + y**2, at the script's rates."""
    lr = {"SGD": 0.95, "Momentum": 0.1, "AdaGrad": 1.5, "Adam": 0.3}.get(name, 0.1)
    paths = []
    for optimizer in (get_optimizer(name, lr=lr), getattr(book_optimizer, name)(lr=lr)):
        params, grads, path = {"x": -7.0, "y": 2.0}, {"x": 0, "y": 0}, []
        for _ in range(30):
            path.append((params["x"], params["y"]))
            grads["x"], grads["y"] = params["x"] / 10.0, 2.0 * params["y"]
            optimizer.update(params, grads)
        paths.append(np.array(path))
    ours, books = paths
    assert np.abs(ours[-1]).max() < 7 and (ours[1:] != ours[:-1]).any(axis=1).all()  # it moves
    if name in SAME_BITS:
        np.testing.assert_array_equal(ours, books)
    else:
        np.testing.assert_allclose(ours, books, rtol=1e-12, atol=1e-300)


def test_the_books_optimisers_refuse_integer_arrays_in_place(book_optimizer):
    """The book's own code raises on an integer array (numpy refuses to write a float
    update into it), which is why fastconv replaces such an entry by its float64 update."""
    with pytest.raises(TypeError):
        book_optimizer.SGD(lr=0.1).update({"p": np.arange(3)}, {"p": np.ones(3)})
    params = {"p": np.arange(3)}
    SGD(lr=0.1).update(params, {"p": np.ones(3)})
    np.testing.assert_array_equal(params["p"], np.arange(3) - 0.1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", ["abc", None, np.array([1 + 2j]), np.array(["a"]),
                                   np.array([1.0, None], dtype=object)],
                         ids=["str", "None", "complex-array", "str-array", "object-array"])
def test_entries_that_are_not_numbers_are_refused_by_name(name, value):
    params = {"W": np.zeros(2), "bad": value}
    with pytest.raises(TypeError, match="'bad'"):
        get_optimizer(name).update(params, {"W": np.ones(2), "bad": np.ones(1)})


# --- the fused Adam step -----------------------------------------------------------------

needs_c = pytest.mark.skipif("c" not in F.available_backends(), reason="extension not built")


@needs_c
@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 20000), dtype=st.sampled_from([np.float32, np.float64]),
       threads=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
@example(size=4096 * 2 + 1, dtype=np.float32, threads=2, seed=0)   # a last block of one
@example(size=4096 * 3 - 1, dtype=np.float64, threads=3, seed=1)
def test_adam_kernel_matches_numpy(size, dtype, threads, seed):
    # Sizes cross the kernel's 4096-value blocks; the thread count must not matter.
    rng = np.random.default_rng(seed)
    p, m, v = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    v = np.abs(v)
    g = rng.standard_normal(size).astype(dtype)
    lr_t, beta1, beta2, eps = rng.uniform(1e-4, 0.1), rng.uniform(0.5, 0.99), 0.999, 1e-7
    ours = [a.copy() for a in (p, m, v)]
    theirs = [a.copy() for a in (p, m, v)]
    with running_on(f"c-{threads}t"):
        F.adam_update(ours[0], g, ours[1], ours[2], lr_t, beta1, beta2, eps)
        if threads > 1 and size >= threads:  # every thread gets an element
            assert last_team_size() == threads
    with F.use_backend("numpy"):
        F.adam_update(theirs[0], g, theirs[1], theirs[2], lr_t, beta1, beta2, eps)
    for a, b in zip(ours, theirs):
        # Same operations in the same order, each rounded: the same bits, since
        # the build sets -ffp-contract=off for this kernel on every compiler.
        np.testing.assert_array_equal(a, b)


def test_adam_update_layouts_and_errors(backend):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((6, 5))
    g = rng.standard_normal((5, 6)).T                         # non-contiguous gradient
    expected = [base.copy(), np.zeros((6, 5)), np.zeros((6, 5))]
    m = expected[1] + 0.1 * (g - expected[1])
    v = expected[2] + 0.001 * (g * g - expected[2])
    p_expected = base - 0.01 * m / (np.sqrt(v) + 1e-7)
    for order in ("C", "F"):                                   # Fortran params: numpy path
        p = np.array(base, order=order)
        mm, vv = np.zeros_like(p), np.zeros_like(p)
        F.adam_update(p, g, mm, vv, 0.01)
        np.testing.assert_allclose(p, p_expected, rtol=1e-12)
        np.testing.assert_allclose(mm, m, rtol=1e-12)
        np.testing.assert_allclose(vv, v, rtol=1e-12)
    p = base.copy()
    with pytest.raises(ValueError, match="grad has shape"):
        F.adam_update(p, g[:2], np.zeros_like(p), np.zeros_like(p), 0.01)
    with pytest.raises(ValueError, match="m has shape"):
        F.adam_update(p, g, np.zeros(3), np.zeros_like(p), 0.01)
    with pytest.raises(ValueError, match="v has shape .* dtype float32"):
        F.adam_update(p, g, np.zeros_like(p), np.zeros_like(p, dtype=np.float32), 0.01)
    with pytest.raises(TypeError, match="param must be a float32 or float64"):
        F.adam_update(np.zeros(3, int), np.zeros(3), np.zeros(3), np.zeros(3), 0.01)
    frozen = np.zeros_like(p)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="m must be writeable"):
        F.adam_update(p, g, frozen, np.zeros_like(p), 0.01)
    with pytest.raises(TypeError, match="grad must be a real numeric"):
        F.adam_update(p, np.full(p.shape, "x"), np.zeros_like(p), np.zeros_like(p), 0.01)


# --- trainer ----------------------------------------------------------------------------

class Spy:
    """A network that records what the trainer feeds it; x holds sample ids."""

    def __init__(self):
        self.params = {"w": np.zeros(2)}
        self.batches = []
        self.evaluated = []

    def gradient(self, x, t):
        assert np.array_equal(x[:, 0], t)  # rows and labels stay paired
        self.batches.append(x[:, 0].astype(int).tolist())
        return {"w": np.ones(2)}

    def loss(self, x, t):
        return float(len(self.batches))

    def accuracy(self, x, t):
        self.evaluated.append(len(x))
        return 0.5


def _spy_trainer(n=105, batch=10, epochs=3, **kwargs):
    ids = np.arange(n)
    spy = Spy()
    trainer = Trainer(spy, ids[:, None].astype(float), ids, ids[:20, None], ids[:20],
                      epochs=epochs, mini_batch_size=batch, verbose=False, seed=0, **kwargs)
    return spy, trainer


def test_each_epoch_is_a_shuffled_pass_without_replacement():
    spy, trainer = _spy_trainer()
    history = trainer.train()
    assert len(spy.batches) == 3 * 11 == trainer.current_iter == trainer.max_iter
    epochs = [sum(spy.batches[i * 11:(i + 1) * 11], []) for i in range(3)]
    for seen in epochs:
        assert sorted(seen) == list(range(105))  # every sample exactly once
    assert [len(b) for b in spy.batches[:11]] == [10] * 10 + [5]  # the last batch kept
    assert epochs[0] != epochs[1] and epochs[0] != list(range(105))  # reshuffled
    # Evaluated at every epoch although 10 does not divide 105, on both sets in full.
    assert spy.evaluated == [105, 20] * 3
    assert len(trainer.train_loss_list) == 33
    for name in ("train_acc_list", "test_acc_list", "epoch_loss_list", "epoch_time_list"):
        assert len(getattr(trainer, name)) == 3, name
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "loss", "train_acc", "test_acc", "seconds"}
    assert history[1]["loss"] == pytest.approx(np.mean(trainer.train_loss_list[11:22]))
    np.testing.assert_allclose(spy.params["w"], -0.01 * 33)  # SGD with lr 0.01
    assert trainer.final_test_acc == 0.5


def test_same_seed_same_order():
    a, ta = _spy_trainer()
    b, tb = _spy_trainer()
    ta.train()
    tb.train()
    assert a.batches == b.batches


def test_callbacks_and_subset_evaluation():
    iterations, epochs = [], []
    spy, trainer = _spy_trainer(
        n=30, batch=7, epochs=2, evaluate_sample_num_per_epoch=12,
        optimizer="adam", optimizer_param={"lr": 0.1},
        on_iteration=lambda tr, i, loss: iterations.append((tr, i, loss)),
        on_epoch=lambda tr, e, record: epochs.append((tr, e, dict(record))))
    trainer.train()
    assert [i for _, i, _ in iterations] == list(range(1, 11))
    assert all(tr is trainer for tr, _, _ in iterations + epochs)
    assert [loss for *_, loss in iterations] == trainer.train_loss_list
    assert [e for _, e, _ in epochs] == [1, 2]
    assert [r for *_, r in epochs] == trainer.history
    assert spy.evaluated == [12, 12, 12, 12, 20]  # subsets per epoch, then the whole test set
    assert isinstance(trainer.optimizer, Adam) and trainer.optimizer.lr == 0.1


def test_verbose_prints_one_line_per_epoch(capsys):
    ids = np.arange(50)
    trainer = Trainer(Spy(), ids[:, None].astype(float), ids, ids[:5, None], ids[:5],
                      epochs=4, mini_batch_size=3, verbose=True)
    trainer.train()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("epoch 1/4") and "final" in lines[-1]


def test_keyboard_interrupt_leaves_a_consistent_trainer():
    def stop(trainer, iteration, loss):
        if iteration == 15:
            raise KeyboardInterrupt

    spy, trainer = _spy_trainer(on_iteration=stop)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert trainer.current_iter == len(trainer.train_loss_list) == len(spy.batches) == 15
    assert trainer.current_epoch == len(trainer.history) == len(trainer.test_acc_list) == 1
    np.testing.assert_allclose(spy.params["w"], -0.01 * 15)
    trainer.on_iteration = None
    trainer.train()  # resumes: the interrupted epoch runs again in full
    assert trainer.current_epoch == 3 and len(trainer.history) == 3
    assert sorted(sum(spy.batches[-11:], [])) == list(range(105))


class InterruptedSGD(SGD):
    """Ctrl-C arrives between the updates of two parameters."""

    def update(self, params, grads):
        for i, (key, p) in enumerate(params.items()):
            if i == 1:
                signal.raise_signal(signal.SIGINT)
            p -= self.lr * grads[key]


def test_ctrl_c_during_an_update_waits_for_it():
    spy, trainer = _spy_trainer(optimizer=InterruptedSGD())
    spy.params["v"] = np.zeros(3)
    spy.gradient = lambda x, t: {"w": np.ones(2), "v": np.ones(3)}
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert trainer.current_iter == len(trainer.train_loss_list) == 1
    np.testing.assert_array_equal(spy.params["w"], -0.01)   # both parameters updated
    np.testing.assert_array_equal(spy.params["v"], -0.01)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_train_step_and_arguments():
    spy, trainer = _spy_trainer()
    x = np.array([[3.0], [4.0]])
    assert trainer.train_step(x, np.array([3, 4])) == 1.0
    assert spy.batches == [[3, 4]]
    with pytest.raises(ValueError, match="mini_batch_size"):
        _spy_trainer(batch=0)
    with pytest.raises(ValueError, match="differ in length"):
        Trainer(Spy(), np.zeros((3, 1)), np.zeros(2), np.zeros((1, 1)), np.zeros(1))


def quadrants(n, size, rng):
    """Noisy images with a bright 3x3 square in one of the four quadrants: the label."""
    t = rng.integers(0, 4, n)
    x = 0.3 * rng.random((n, 1, size, size))
    half = size // 2
    for i, q in enumerate(t):
        r = (q // 2) * half + rng.integers(0, half - 2)
        c = (q % 2) * half + rng.integers(0, half - 2)
        x[i, 0, r:r + 3, c:c + 3] += 1.0
    return x.astype(np.float32), t


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_simpleconvnet_learns_quadrants(backend):
    if backend not in F.available_backends():
        pytest.skip("the C extension is not built")
    rng = np.random.default_rng(0)
    x_train, t_train = quadrants(400, 8, rng)
    x_test, t_test = quadrants(200, 8, rng)
    net = SimpleConvNet((1, 8, 8), {"filter_num": 6, "filter_size": 3, "pad": 1, "stride": 1},
                        hidden_size=16, output_size=4, weight_init_std=0.1, seed=0)
    with F.use_backend(backend):
        trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=6, mini_batch_size=20,
                          optimizer="Adam", optimizer_param={"lr": 0.01}, verbose=False, seed=0)
        trainer.train()
    assert trainer.train_loss_list[0] > 1.2  # log(4) = 1.39: it starts at chance
    assert trainer.epoch_loss_list[-1] < 0.25 * trainer.epoch_loss_list[0]
    assert trainer.final_test_acc > 0.95
    assert trainer.train_acc_list[-1] > 0.95
    assert net.params["W1"].dtype == np.float32


# --- recipes: the command line's presets, usable from Python ---------------------------

def test_a_recipe_from_python_trains_as_the_command_line_does(mnist_dir, tmp_path):
    # The same recipe, seed and data through Python and through `fastconv train`
    # must give the same parameters bit for bit: the CLI reads the same object.
    import json

    from fastconv import cli
    from fastconv.io import mnist as datasets
    from fastconv.train import RECIPES
    recipe = RECIPES["fast"].replace(epochs=1, batch_size=50)
    (x_train, t_train), (x_test, t_test) = datasets.load_mnist(
        normalize=True, flatten=False, data_dir=mnist_dir, download=False)
    train, test = (x_train[:200], t_train[:200]), (x_test[:100], t_test[:100])
    net = recipe.model("simple", seed=3)
    lrs = []
    trainer = recipe.trainer(net, train, test, seed=3,
                             on_iteration=lambda tr, i, loss: lrs.append(tr.optimizer.lr))
    trainer.train()
    assert lrs[0] < recipe.lr and lrs[-1] < lrs[0]  # cosine-steps decays every update
    out = tmp_path / "run"
    status = cli.main(["train", "--preset", "fast", "--epochs", "1", "--batch-size", "50",
                       "--limit", "200", "--seed", "3", "--data", str(mnist_dir), "--quiet",
                       "--out", str(out)])
    assert status == 0
    saved = np.load(out / "params.npz")
    for name, array in net.params.items():
        assert np.array_equal(saved[name], array), name
    history = json.loads((out / "history.json").read_text())
    assert history["lr_schedule"] == "cosine-steps" and history["augment"] == 1
