"""The prefix index of roots (``shared_roots.RootIndex``) gives the same answers as the pairwise
rule (``overlap``): on a table of the cases that matter (equal, above, inside, siblings that share
a prefix of characters but not of components, ``/``, unnormalised paths), then on random sets of
paths with additions and removals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efs_csi_controller.shared_roots import RootIndex, normalise, overlap

TABLE = ["/", "/a", "/a/b", "/a/b/c", "/ab", "/a-b", "/a.b", "/a/bc", "/b", "//a//b/", "/a/b/"]


def pairwise(roots: list[tuple[str, int]], root: str) -> list[int]:
    return sorted(item for other, item in roots if overlap(normalise(other), normalise(root)))


@pytest.mark.parametrize("root", [*TABLE, "/a/b/c/d", "/z", "/a/", "/ab/c"])
def test_the_index_finds_exactly_the_overlapping_roots_of_the_table(root: str) -> None:
    index: RootIndex[int] = RootIndex()
    roots = [(other, number) for number, other in enumerate(TABLE)]
    for other, number in roots:
        index.add(other, number)
    assert sorted(index.overlapping(root)) == pairwise(roots, root)


def test_siblings_sharing_characters_are_apart_and_a_parent_holds_its_children() -> None:
    index: RootIndex[str] = RootIndex()
    for root in ("/a", "/ab", "/a/b", "/a-b"):
        index.add(root, root)
    assert sorted(index.overlapping("/a/b/c")) == ["/a", "/a/b"]
    assert sorted(index.overlapping("/a")) == ["/a", "/a/b"]
    assert index.overlapping("/ab/") == ["/ab"]
    assert sorted(index.overlapping("/")) == ["/a", "/a-b", "/a/b", "/ab"]
    assert index.overlapping("/b") == []


def test_removing_an_item_forgets_it_and_keeps_the_others_of_its_root() -> None:
    index: RootIndex[str] = RootIndex()
    index.add("/a", "one")
    index.add("/a/", "two")
    index.discard("/a", "one")
    assert index.overlapping("/a/b") == ["two"]
    index.discard("//a", "two")
    index.discard("/a", "never added")
    assert index.overlapping("/") == [] and len(index) == 0


COMPONENT = st.sampled_from(["a", "b", "ab", "a-b", "a.b", "b0", "A", "a b"])
PATH = st.lists(COMPONENT, max_size=4).map(lambda parts: "/" + "/".join(parts)) | \
    st.lists(st.sampled_from(["a", "b", "ab", ""]), max_size=5).map("/".join)


@settings(max_examples=300)
@given(roots=st.lists(PATH, max_size=30), removed=st.sets(st.integers(0, 29)),
       queries=st.lists(PATH, min_size=1, max_size=10))
def test_the_index_agrees_with_the_pairwise_rule_on_random_paths(
        roots: list[str], removed: set[int], queries: list[str]) -> None:
    index: RootIndex[int] = RootIndex()
    for number, root in enumerate(roots):
        index.add(root, number)
    kept = []
    for number, root in enumerate(roots):
        if number in removed:
            index.discard(root, number)
        else:
            kept.append((root, number))
    assert len(index) == len(kept)
    for query in queries:
        assert sorted(index.overlapping(query)) == pairwise(kept, query)
