"""MAD task generators (search.mad), the macro-accuracy score and the protocols (search.protocol)."""

from __future__ import annotations

import numpy as np
import pytest

from livc.search import protocol as P
from livc.search.mad import memorization
from livc.search.mad.metrics import macro_accuracy
from livc.search.mad.setting import IGNORE, TaskSetting
from livc.search.mad.tasks import TASKS, dataset, problems, split

RECALL = TaskSetting(task="in_context_recall", vocab=16, seq=64, train=64, test=64)
NOISY = TaskSetting(task="noisy_recall", vocab=32, noise_vocab=16, frac_noise=0.4, seq=128, train=200, test=16)
FUZZY = TaskSetting(task="fuzzy_recall", vocab=16, seq=64, motif=3, train=64, test=64)
COPY = TaskSetting(task="selective_copying", vocab=10, seq=40, copy=6, train=64, test=16)
COMPRESS = TaskSetting(task="compression", vocab=8, seq=12, train=32, test=16)
MEMO = TaskSetting(task="memorization", vocab=64, seq=16, train=32, test=32)
ALL = (RECALL, NOISY, FUZZY, COPY, COMPRESS, MEMO)


@pytest.mark.parametrize("s", ALL, ids=lambda s: s.task)
def test_shapes_ranges_and_seed_determinism(s: TaskSetting) -> None:
    a, b, c = dataset(s, 1), dataset(s, 1), dataset(s, 2)
    length = s.seq - 1 if "recall" in s.task and s.task != "fuzzy_recall" else s.seq
    assert a.train_x.shape == a.train_y.shape == (s.train, length)
    assert a.test_x.shape == a.test_y.shape == (s.test, length)
    assert a.train_x.min() >= 0 and a.train_x.max() < s.vocab
    scored = a.test_y[a.test_y != IGNORE]
    assert scored.size and scored.min() >= 0 and scored.max() < s.vocab
    assert np.array_equal(a.train_x, b.train_x) and np.array_equal(a.test_y, b.test_y)
    assert not np.array_equal(a.train_x, c.train_x)
    # the test split does not depend on how many training examples were drawn
    assert np.array_equal(dataset(s.replace(train=s.train + 3), 1).test_x, a.test_x)


def _pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    full = np.concatenate([x, y[-1:]])  # training targets are the inputs shifted by one
    return full[0::2], full[1::2]


@pytest.mark.parametrize("s", (RECALL, NOISY), ids=lambda s: s.task)
def test_recall_values_follow_keys_and_only_seen_keys_are_scored(s: TaskSetting) -> None:
    data = dataset(s, 0)
    clean = s.vocab - s.noise_vocab
    for x, y in zip(data.train_x, data.train_y, strict=True):
        assert np.array_equal(x[1:], y[:-1])
        keys, values = _pairs(x, y)
        real = keys < clean // 2
        assert np.all(values[real] >= clean // 2) and np.all(values[real] < clean)
        mapping: dict[int, int] = {}
        for k, v in zip(keys[real], values[real], strict=True):
            assert mapping.setdefault(int(k), int(v)) == v  # one value per key in a sequence
    for x, y in zip(data.test_x, data.test_y, strict=True):
        seen: dict[int, int] = {}
        for i in range(0, len(x), 2):
            key = int(x[i])
            if key < clean // 2 and key in seen:
                assert y[i] == seen[key]
            else:
                assert y[i] == IGNORE
            if key < clean // 2 and i + 1 < len(x):
                seen[key] = int(x[i + 1])
        assert y[-1] != IGNORE  # the final probe is always scored
        assert np.all(y[1::2] == IGNORE)


def test_noise_fraction() -> None:
    x = dataset(NOISY, 0).train_x
    keys = np.concatenate([x, x[:, -1:]], axis=1)[:, 0:-2:2]  # the seq/2 - 1 pairs before the probe
    noise = keys >= NOISY.vocab - NOISY.noise_vocab
    assert abs(noise.mean() - NOISY.frac_noise) < 0.03
    assert np.all((~noise).any(axis=1))
    assert dataset(RECALL, 0).train_x.max() < RECALL.vocab and problems(RECALL) == []


def test_fuzzy_recall_test_keys_are_longest_motifs_and_scored_values_repeat() -> None:
    data = dataset(FUZZY, 3)
    pad = FUZZY.vocab - 1
    n_keys = (FUZZY.vocab - 1) // 2
    for x, y in zip(data.test_x, data.test_y, strict=True):
        body = x[x != pad]
        is_key = body < n_keys
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[-1], is_key.astype(int), [-1]])) != 0))
        key_runs = runs[0::2] if is_key[0] else runs[1::2]
        assert np.all(key_runs[:-1] == FUZZY.motif)  # every complete key is a 3-token motif
        scored = np.flatnonzero(y != IGNORE)
        inner = scored[scored + 1 < len(x)]
        assert scored.size and np.array_equal(y[inner], x[inner + 1])  # scored targets are the next tokens
        assert np.all(y[scored] >= n_keys) and np.all(y[scored] < pad)
    train = dataset(FUZZY, 3).train_x
    assert len({int(v) for v in train[train != pad]}) > n_keys  # keys and values both occur


def test_selective_copy_targets_are_the_tokens_in_order() -> None:
    data = dataset(COPY, 0)
    copy_token, blank = COPY.vocab - 1, COPY.vocab - 2
    for x, y in zip(data.test_x, data.test_y, strict=True):
        at = int(np.flatnonzero(x == copy_token)[0])
        assert at == COPY.seq - COPY.copy - 1 and np.all(x[at + 1 :] == blank)
        tokens = x[:at][x[:at] != blank]
        assert len(tokens) == COPY.copy and x[at - 1] != blank
        assert np.array_equal(y[at + 1 :], tokens) and np.all(y[: at + 1] == IGNORE)


def test_compression_targets_are_the_inputs() -> None:
    data = dataset(COMPRESS, 0)
    assert np.array_equal(data.train_x, data.train_y)
    assert np.all(data.train_x[:, -1] == COMPRESS.vocab - 1) and data.train_x[:, :-1].max() < COMPRESS.vocab - 1


def test_memorization_map_is_fixed_across_seeds_and_splits() -> None:
    table = memorization.value_map(MEMO.vocab)
    assert len(table) == (MEMO.vocab - 1) // 2 and len(set(table.tolist())) == len(table)
    assert np.all(table >= len(table)) and np.all(table < MEMO.vocab - 1)
    for seed in (0, 7):
        for x, y in (split(MEMO, seed, 0, 16), split(MEMO, seed, 1, 16)):
            assert np.all(x[:, 1::2] == MEMO.vocab - 1) and np.all(y[:, 0::2] == IGNORE)
            assert np.array_equal(y[:, 1::2], table[x[:, 0::2]])


def test_macro_accuracy_averages_classes_like_torchmetrics() -> None:
    targets = np.array([0, 0, 0, 1, IGNORE])
    preds = np.array([0, 0, 0, 0, 2])
    assert macro_accuracy(preds, targets, classes=4) == pytest.approx(0.5)  # (1 + 0) / 2; 4 token acc 0.75
    # a class that is only predicted counts as 0; an absent class is left out
    assert macro_accuracy(np.array([2, 1]), np.array([1, 1]), classes=4) == pytest.approx(0.25)


def test_protocols_match_mad_and_reject_bad_settings() -> None:
    full = P.full()
    counts = {t: sum(1 for s in full.settings if s.task == t) for t in TASKS}
    assert counts == {
        "in_context_recall": 11,
        "fuzzy_recall": 11,
        "noisy_recall": 14,
        "selective_copying": 13,
        "compression": 11,
        "memorization": 6,
    }
    assert full.runs == 396 and full.steps_for(full.settings[0]) == 200 * 100
    light = P.light(steps=500, lr=5e-4, width=64)
    assert len(light.settings) == 6 and light.steps == 500 and light.lr == 5e-4 and light.width == 64
    assert P.light(tasks=("compression",)).tasks == ("compression",)
    with pytest.raises(ValueError, match="copy"):
        P.tiny().replace(settings=(COPY.replace(copy=30),))
    with pytest.raises(ValueError, match="unknown MAD task"):
        P.tiny().only(("recall",))


def test_protocols_pickle_for_worker_processes() -> None:
    import pickle

    for protocol in (P.full(), P.light(), P.tiny()):
        assert pickle.loads(pickle.dumps(protocol)) == protocol
