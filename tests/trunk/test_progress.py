"""latent4d.progress: one progress bar (rich, ETA, stderr) for every long-running command."""

import pytest

from latent4d import progress


def test_track_yields_every_item_in_order_with_and_without_a_bar(monkeypatch):
    assert list(progress.track(range(5), "t")) == [0, 1, 2, 3, 4]
    assert list(progress.track(iter("abc"), "t")) == ["a", "b", "c"]  # no len: passed through
    assert list(progress.track([1, 2], "t", min_total=3)) == [1, 2]  # below min_total: no bar
    monkeypatch.setenv(progress.ENV, "0")
    assert not progress.enabled()
    assert list(progress.track(range(3), "t")) == [0, 1, 2]


def test_bar_counts_to_its_total_and_is_silent_when_off(monkeypatch, capsys):
    seen = []
    with progress.bar(4, "counting") as advance:
        for _ in range(4):
            advance(1)
            seen.append(1)
    assert seen == [1] * 4
    assert capsys.readouterr().out == ""  # bars go to stderr, stdout stays for results
    with progress.bar(10, "off", show=False) as advance:
        advance(3)  # the no-op accepts the same calls
    monkeypatch.setenv(progress.ENV, "off")
    with progress.bar(10, "env off") as advance:
        advance(10)


def test_ctrl_c_propagates_through_a_bar():
    done = []
    with pytest.raises(KeyboardInterrupt):
        for k in progress.track(range(10), "interrupted"):
            if k == 3:
                raise KeyboardInterrupt
            done.append(k)
    assert done == [0, 1, 2]
    with pytest.raises(KeyboardInterrupt), progress.bar(5, "interrupted") as advance:
        advance(1)
        raise KeyboardInterrupt
