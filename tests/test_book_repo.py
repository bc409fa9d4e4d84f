"""The book's own repository (../shared/book, "Deep Learning from Scratch") as a real
client of ``python -m fastconv.book``.

Every script of ch03-ch08 runs twice, from two copies of the book with the same
changes (below): through ``python -m fastconv.book`` (fastconv's stand-ins for
``common.*`` and ``dataset.mnist``), and as the book runs it, ``python SCRIPT`` on the
book's own ``common/`` and ``dataset/mnist.py``. Then what the two print is compared
line by line. MNIST is only in each copy's ``dataset/`` folder: the four .gz files of
../shared/data/mnist, as a reader's folder holds them after the book's first run (the
book's copy also gets the ``mnist.pkl`` its loader makes of them). FASTCONV_DATA is
unset, fastconv's cache is an empty folder, and every proxy is a closed local port, so
nothing but the copy's dataset/ can serve and a download attempt would fail at once.

The changes to both copies, each asserted to apply (a substitution that matches
nothing fails the set-up):

- a first line seeding NumPy's global generator, the same in both: the book never
  seeds, and with one seed both runs draw the same weights, batches, dropout masks and
  hyper-parameters (the stand-ins draw from that generator in the book's order);
- the budgets of the scripts that train or differentiate for long (CUTS);
- ch06/optimizer_compare_naive.py prints the paths it draws.

How the lines are compared (each script's RULES; every other line must be equal):

- accuracies: the two runs take the same steps and differ only by rounding, so they
  agree (they did, exactly, on 2026-12-02). The tolerance is what test-set sampling
  alone could explain, three standard errors of the difference of two accuracies on
  the same n images, 3 * sqrt(2 p (1 - p) / n) + 1/n (p the book's): a stand-in that
  changed what a step does moves a short run's accuracy by more (with the running
  variance of the stand-in's batch norm starting at one, as fastconv's own layer's,
  instead of the book's zero, ch06/batch_norm_test.py's batch-norm accuracy on 1000
  images is 0.101 where the book's is 0.159, and this allows 0.050);
- batch losses: the book adds 1e-7 inside the log of its cross-entropy, fastconv's
  SoftmaxWithLoss takes the exact log-softmax, on the same gradient; so fastconv's loss
  is higher by the batch mean of log(1 + 1e-7 / y), y the true class's probability:
  at least 0 and at most 1e-4, which holds while each y of a batch is at least 1e-3
  (observed: 1e-7 to 6e-7);
- gradient checks (mean |numerical - backprop|): no worse than the book's on the same
  draw; both cross the same ReLU and pooling kinks, which dominate where the figures
  are large, and differentiate losses that differ by the book's 1e-7, hence 1e-5
  relative, plus 1e-9 absolute for the figures that are rounding (fastconv's 1e-13
  to 1e-10, the book's 1e-10 to 1e-7).

Two evaluations of the 2016 weights run on fastconv only, as the book's code takes
about 20 s and 70 s for them: ch08/misclassified_mnist.py must print the book's own output
(recorded from a run of the book's code on 2026-12-02: 99.35% and its list of
misclassified digits) and ch07's SimpleConvNet with params.pkl must score 98.90% (a
script of this test's, on the book's simple_convnet.py; the book's code printed 0.989).

The pairs run at the same time, each on one thread, on a machine of two cores.
"""
import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[2] / "shared" / "book"
CHAPTERS = [f"ch0{n}" for n in range(3, 9)]
GZ_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SEED_LINE = "import numpy; numpy.random.seed(20161201)  # fastconv's test: both copies alike\n"
TIMEOUT = 600

# The book's files that only define what scripts import: run through those scripts.
MODULES = {
    "ch04/two_layer_net.py": "ch04/train_neuralnet.py",
    "ch05/layer_naive.py": "ch05/buy_apple.py, ch05/buy_apple_orange.py",
    "ch05/two_layer_net.py": "ch05/gradient_check.py, ch05/train_neuralnet.py",
    "ch07/simple_convnet.py": "ch07/apply_filter.py, gradient_check.py, train_convnet.py, "
                              "visualize_filter.py and EVAL_2016",
    "ch08/deep_convnet.py": "ch08/half_float_network.py, misclassified_mnist.py, "
                            "train_deepnet.py",
}
# No script of ch03-ch08 fails on the book's own code (each ran with exit status 0 on
# 2026-12-02, MNIST in place); ch08/awesome_net.py is one comment and runs as such.

# (script, text, replacement, why): applied to both copies; each must match once.
CUTS = [
    ("ch04/train_neuralnet.py", "iters_num = 10000", "iters_num = 201",
     "10,000 steps -> 201"),
    ("ch04/train_neuralnet.py", "train_size = x_train.shape[0]", "train_size = 10000",
     "batches from the first 10,000 images: an 'epoch' of 100 steps, 3 evaluations"),
    ("ch05/train_neuralnet.py", "iters_num = 10000", "iters_num = 201", "as ch04"),
    ("ch05/train_neuralnet.py", "train_size = x_train.shape[0]", "train_size = 10000",
     "as ch04"),
    ("ch05/gradient_check.py", "hidden_size=50", "hidden_size=10",
     "finite differences of 39,760 weights -> 7,960"),
    ("ch06/batch_norm_gradient_check.py", "hidden_size_list=[100, 100]",
     "hidden_size_list=[10, 10]",
     "finite differences of 90,010 weights -> 8,110 (28 s on the book's code)"),
    ("ch06/batch_norm_test.py", "max_epochs = 20", "max_epochs = 2", "20 epochs -> 2"),
    ("ch06/batch_norm_test.py", "np.logspace(0, -4, num=16)", "np.logspace(0, -4, num=4)",
     "16 weight scales -> 4 (1, 0.046, 0.0022, 0.0001)"),
    ("ch06/hyperparameter_optimization.py", "optimization_trial = 100",
     "optimization_trial = 4", "100 trials -> 4"),
    ("ch06/hyperparameter_optimization.py", "epocs=50", "epocs=2", "50 epochs -> 2"),
    ("ch06/optimizer_compare_mnist.py", "max_iterations = 2000", "max_iterations = 51",
     "2,000 steps -> 51"),
    ("ch06/optimizer_compare_mnist.py", "if i % 100 == 0:", "if i % 50 == 0:",
     "losses printed at steps 0 and 50"),
    ("ch06/weight_init_compare.py", "max_iterations = 2000", "max_iterations = 51",
     "as optimizer_compare_mnist"),
    ("ch06/weight_init_compare.py", "if i % 100 == 0:", "if i % 50 == 0:",
     "as optimizer_compare_mnist"),
    ("ch06/overfit_dropout.py", "epochs=301", "epochs=3", "301 epochs -> 3"),
    ("ch06/overfit_weight_decay.py", "max_epochs = 201", "max_epochs = 3",
     "201 epochs -> 3"),
    ("ch06/optimizer_compare_naive.py", "    plt.plot(x_history, y_history, 'o-', color=\"red\")",
     "    print(key, [float(v) for v in x_history], [float(v) for v in y_history])\n"
     "    plt.plot(x_history, y_history, 'o-', color=\"red\")",
     "not a cut: prints the optimisers' paths, which it otherwise only draws"),
    ("ch07/train_convnet.py", "#x_train, t_train = x_train[:5000], t_train[:5000]",
     "x_train, t_train = x_train[:500], t_train[:500]",
     "the script's own commented-out cut, smaller: 500 training images"),
    ("ch07/train_convnet.py", "#x_test, t_test = x_test[:1000], t_test[:1000]",
     "x_test, t_test = x_test[:500], t_test[:500]", "500 test images"),
    ("ch07/train_convnet.py", "max_epochs = 20", "max_epochs = 1", "20 epochs -> 1"),
    ("ch07/train_convnet.py", 'network.save_params("params.pkl")',
     'network.save_params("params_trained.pkl")', "keeps the 2016 params.pkl"),
    ("ch08/train_deepnet.py", "network = DeepConvNet()  ",
     "x_train, t_train = x_train[:200], t_train[:200]\n"
     "x_test, t_test = x_test[:100], t_test[:100]\n"
     "network = DeepConvNet()  ", "200 training and 100 test images"),
    ("ch08/train_deepnet.py", "epochs=20", "epochs=1", "20 epochs -> 1"),
    ("ch08/train_deepnet.py", 'network.save_params("deep_convnet_params.pkl")',
     'network.save_params("deep_convnet_trained.pkl")', "keeps the 2016 weights"),
    ("ch08/half_float_network.py", "sampled = 10000", "sampled = 500",
     "10,000 test images -> 500 (the book's code takes about 7 s for 1,000)"),
]

NUM = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"


def acc(n):
    def check(ours, books):
        p = books
        tolerance = 3 * math.sqrt(2 * p * (1 - p) / n) + 1 / n
        return abs(ours - books) <= tolerance, f"accuracy on {n} images, within {tolerance:.3g}"
    return check


def loss(ours, books):
    return -1e-12 <= ours - books <= 1e-4, "batch loss: 0 <= ours - book's <= 1e-4"


def grad(ours, books):
    return ours <= books * (1 + 1e-5) + 1e-9, "gradient check: ours <= book's (1 + 1e-5) + 1e-9"


def printed(ours, books):
    return abs(ours - books) <= 1.5e-8, "numpy's 8 decimals: one unit of the last apart"


TRAINER = [  # common/trainer.py's lines: (regex, checks of its groups)
    (rf"train loss:{NUM}", [loss]),
]
# (regex, checks of its groups) per script; a line no regex matches must be the same.
RULES = {
    "ch04/gradient_simplenet.py": [(rf"\s*\[?\[\s*{NUM}\s+{NUM}\s+{NUM}\]\]?",
                                    [printed] * 3)],
    "ch04/train_neuralnet.py": [(rf"train acc, test acc \| {NUM}, {NUM}",
                                 [acc(60000), acc(10000)])],
    "ch05/train_neuralnet.py": [(rf"{NUM} {NUM}", [acc(60000), acc(10000)])],
    "ch05/gradient_check.py": [(rf"\w+:{NUM}", [grad])],
    "ch06/batch_norm_gradient_check.py": [(rf"\w+:{NUM}", [grad])],
    "ch07/gradient_check.py": [(rf"\w+ {NUM}", [grad])],
    "ch06/batch_norm_test.py": [(rf"epoch:\d+ \| {NUM} - {NUM}", [acc(1000), acc(1000)])],
    "ch06/hyperparameter_optimization.py": [
        (rf"val acc:{NUM} \| (lr:.*)", [acc(100), None]),
        (rf"Best-\d+\(val acc:{NUM}\) \| (lr:.*)", [acc(100), None])],
    "ch06/optimizer_compare_mnist.py": [(rf"(?:SGD|Momentum|AdaGrad|Adam):{NUM}", [loss])],
    "ch06/weight_init_compare.py": [(rf"(?:std=0\.01|Xavier|He):{NUM}", [loss])],
    "ch06/overfit_dropout.py": TRAINER + [
        (rf"=== epoch:\d+, train acc:{NUM}, test acc:{NUM} ===", [acc(300), acc(10000)]),
        (rf"test acc:{NUM}", [acc(10000)])],
    "ch06/overfit_weight_decay.py": [
        (rf"epoch:\d+, train acc:{NUM}, test acc:{NUM}", [acc(300), acc(10000)])],
    "ch07/train_convnet.py": TRAINER + [
        (rf"=== epoch:\d+, train acc:{NUM}, test acc:{NUM} ===", [acc(500), acc(500)]),
        (rf"test acc:{NUM}", [acc(500)])],
    "ch08/train_deepnet.py": TRAINER + [
        (rf"=== epoch:\d+, train acc:{NUM}, test acc:{NUM} ===", [acc(200), acc(100)]),
        (rf"test acc:{NUM}", [acc(100)])],
    "ch08/half_float_network.py": [(NUM, [acc(500)])],
}

# Run on fastconv only, against the book's own output on the same 2016 weights.
EVAL_2016 = '''\
# fastconv's test, not the book's: ch07's SimpleConvNet with the 2016 params.pkl
import sys, os
sys.path.append(os.pardir)
from dataset.mnist import load_mnist
from simple_convnet import SimpleConvNet

(x_train, t_train), (x_test, t_test) = load_mnist(flatten=False)
network = SimpleConvNet()
network.load_params("params.pkl")
print("test accuracy:" + str(network.accuracy(x_test, t_test)))
'''
_PAIRS = [(6, 0), (3, 5), (3, 5), (8, 3), (7, 3), (1, 3), (8, 9), (6, 0), (6, 5), (7, 2),
          (9, 4), (7, 1), (5, 3), (1, 3), (0, 6), (9, 4), (7, 9), (6, 0), (9, 8), (4, 9)]
FASTCONV_ONLY = {
    "ch08/misclassified_mnist.py": [
        "calculating test accuracy ... ",
        "test accuracy:0.9935",
        "======= misclassified result =======",
        "{view index: (label, inference), ...}",
        "{" + ", ".join(f"{i}: (np.uint8({t}), np.int64({y}))"
                        for i, (t, y) in enumerate(_PAIRS, 1)) + "}"],
    "ch07/fastconv_test_eval_2016.py": ["test accuracy:0.989"],
}
# sha256 of the 2016 files, as sha256sum prints them (FASTCONV-README.md abbreviates
# them; its ch08 abbreviation ends "e7422cc", the file's digest "b7422cc").
WEIGHTS_2016 = {
    "ch07/params.pkl": "290ab40c1b1218b392cdc155b633a5df642d829453702fa421ce5f3c6c55f779",
    "ch08/deep_convnet_params.pkl":
        "8c81d1d6ddedd08c8277c957f3af30a91e455a1d65474ec2b5a0e3527b7422cc",
}


def _scripts():
    return sorted(f"{ch}/{p.name}" for ch in CHAPTERS for p in (BOOK / ch).glob("*.py"))


RUN = [s for s in _scripts() if s not in MODULES and s not in FASTCONV_ONLY]


def _env(work):
    env = {k: v for k, v in os.environ.items()
           if k != "FASTCONV_DATA" and "proxy" not in k.lower()}
    dead = "http://127.0.0.1:9"
    env.update(MPLBACKEND="Agg", XDG_CACHE_HOME=str(work / "cache"),
               MPLCONFIGDIR=str(work / "mplconfig"), http_proxy=dead, https_proxy=dead,
               HTTP_PROXY=dead, HTTPS_PROXY=dead, OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def _copy_book(dst, mnist_dir):
    shutil.copytree(BOOK, dst)
    for path in [dst, *dst.rglob("*")]:  # ../shared is read-only; the copies are not
        path.chmod(0o755 if path.is_dir() else 0o644)
    for name in GZ_NAMES:
        shutil.copyfile(mnist_dir / name, dst / "dataset" / name)
    for script in _scripts():
        path = dst / script
        path.write_text(SEED_LINE + path.read_text(encoding="utf-8"), encoding="utf-8")
    for script, old, new, _ in CUTS:
        path = dst / script
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{script}: {old!r} matches {text.count(old)} times"
        path.write_text(text.replace(old, new), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def copies(tmp_path_factory, mnist_dir):
    if not (BOOK / "FASTCONV-README.md").is_file():
        pytest.fail(f"the book's repository is not at {BOOK}")
    work = tmp_path_factory.mktemp("book_repo")
    ours = _copy_book(work / "fastconv", mnist_dir)
    (ours / "ch07" / "fastconv_test_eval_2016.py").write_text(EVAL_2016)
    books = _copy_book(work / "book", mnist_dir)
    env = _env(work)
    # The book's loader makes its mnist.pkl of the .gz files (and says so) on first use.
    made = subprocess.run([sys.executable, "mnist.py"], cwd=books / "dataset", env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert made.returncode == 0 and (books / "dataset" / "mnist.pkl").is_file(), made.stderr
    yield {"fastconv": ours, "book": books, "env": env, "work": work}
    # Only the copy's .gz files served: nothing in fastconv's cache, no pickle beside them.
    assert not (work / "cache" / "fastconv").exists()
    assert not (ours / "dataset" / "mnist.pkl").exists()


def _start_fastconv(copies, script):
    return subprocess.Popen([sys.executable, "-m", "fastconv.book", script],
                            cwd=copies["fastconv"], env=copies["env"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _start_book(copies, script):
    folder, name = os.path.split(script)
    return subprocess.Popen([sys.executable, name], cwd=copies["book"] / folder,
                            env=copies["env"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(process, what):
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"{what} took more than {TIMEOUT} s:\n{err[-2000:]}")
    assert process.returncode == 0, f"{what} failed ({process.returncode}):\n{err[-3000:]}"
    return out


def _hexless(line):
    return re.sub(r"0x[0-9a-fA-F]+", "0x...", line)  # object addresses (PIL's repr)


def compare(script, ours, books):
    """Line by line: a line one of the script's RULES matches is compared number by
    number with that rule's checks (None: the text must be equal); any other line must
    be the same."""
    ours, books = ours.splitlines(), books.splitlines()
    assert len(ours) == len(books), (script, ours[-5:], books[-5:])
    rules = [(re.compile(regex), checks) for regex, checks in RULES.get(script, [])]
    compared = 0
    for i, (a, b) in enumerate(zip(ours, books)):
        for regex, checks in rules:
            ma, mb = regex.fullmatch(a), regex.fullmatch(b)
            if ma and mb:
                for check, x, y in zip(checks, ma.groups(), mb.groups()):
                    if check is None:
                        assert x == y, (script, i, a, b)
                        continue
                    ok, why = check(float(x), float(y))
                    assert ok, f"{script} line {i}: ours {a!r}, book's {b!r}: {why}"
                    compared += 1
                break
        else:
            assert _hexless(a) == _hexless(b), (script, i, a, b)
    return compared


@pytest.mark.parametrize("script", RUN)
def test_the_books_script_prints_what_the_books_code_prints(copies, script):
    ours_process = _start_fastconv(copies, script)
    books_process = _start_book(copies, script)
    ours = _finish(ours_process, f"python -m fastconv.book {script}")
    books = _finish(books_process, f"the book's python {script}")
    compared = compare(script, ours, books)
    if script in RULES:  # every rule of the script met its lines
        assert compared >= len(RULES[script]), (script, compared, ours[-500:])


@pytest.mark.parametrize("script", sorted(FASTCONV_ONLY))
def test_the_2016_weights_score_as_in_the_book(copies, script):
    for name, digest in WEIGHTS_2016.items():
        assert hashlib.sha256((copies["fastconv"] / name).read_bytes()).hexdigest() == digest
    ours = _finish(_start_fastconv(copies, script), f"python -m fastconv.book {script}")
    assert ours.splitlines() == FASTCONV_ONLY[script]


def test_every_script_is_run_or_imported_and_every_cut_applies():
    scripts = _scripts()
    assert len(scripts) == 38
    assert set(MODULES) <= set(scripts) and set(RULES) <= set(RUN)
    assert sorted(RUN + list(MODULES) + ["ch08/misclassified_mnist.py"]) == scripts
    for script, old, _, _ in CUTS:
        assert script in RUN, script
        assert (BOOK / script).read_text(encoding="utf-8").count(old) == 1, (script, old)
    # The scripts that read MNIST, all run here with only the copy's dataset/ to serve.
    reads = [s for s in scripts if "load_mnist" in (BOOK / s).read_text(encoding="utf-8")]
    assert len(reads) == 17 and set(reads) <= set(RUN) | set(FASTCONV_ONLY)
