"""What the model is told about the notebook: summaries, budget, {name}, and each step's diff."""

from __future__ import annotations

import types
from collections import ChainMap

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from smol_magic.guard import Policy

from smol_magic import CodeAgent, ScriptedModel, describe
from smol_magic.context import namespace as nsmod
from smol_magic.context.namespace import diff, format_diff, headline, interpolate, snapshot, summarize, user_variables


def fence(code: str) -> str:
    return f"Thought: next.\n```python\n{code}\n```"


def first_task(model: ScriptedModel) -> str:
    return model.requests[0][-1]["content"]


# -- which variables ---------------------------------------------------------


def test_ipython_names_underscores_and_hidden_objects_are_not_user_variables(ip):
    ip.run_cell("import numpy as np\nimport os.path\nx = 41\n_private = 1\nx + 1")
    ip.run_cell("y = 'hi'")
    names = user_variables(ip.user_ns, ip.user_ns_hidden)
    assert set(names) == {"np", "os", "x", "y"}
    text = summarize(ip.user_ns, ip.user_ns_hidden)
    for name in ("In", "Out", "get_ipython", "exit", "_i1", "_1", "_private", "_ih"):
        assert f"- {name}:" not in text
    assert "- x: int = 41" in text and "- y: str = 'hi'" in text
    # modules: by name only, on one line
    assert text.splitlines()[-1] == "- imported modules: np (numpy), os"
    assert "module numpy" not in text


def test_a_hidden_name_rebound_by_the_user_is_the_users_again():
    tool = object()
    assert user_variables({"lookup": tool}, {"lookup": tool}) == {}
    assert user_variables({"lookup": 3}, {"lookup": tool}) == {"lookup": 3}
    assert user_variables({"lookup": 3}, {"lookup"}) == {}  # a plain set of names hides by name



def test_a_big_notebook_lists_the_users_variables_in_order_whatever_the_hidden_names():
    """The run's walk over a notebook of many names (a copy less the hidden ones): the same answer as a
    name-by-name check, in the notebook's order, for every kind of ``hidden``."""
    tool, shell_exit = object(), object()
    ns = {f"v{i}": i for i in range(300)}
    ns.update({"_i7": "x = 1", "_": 3, "In": [], "exit": shell_exit, "lookup": tool, "quit": 5, "tail": 1})
    expected = [f"v{i}" for i in range(300)] + ["quit", "tail"]  # `quit` was rebound by the user
    shell_hidden = {"_i7": "x = 1", "exit": shell_exit, "quit": object(), "In": []}
    for hidden in (ChainMap(shell_hidden, {"lookup": tool}), ChainMap(ChainMap(shell_hidden), {"lookup": tool})):
        assert list(user_variables(ns, hidden)) == expected
    assert list(user_variables(ns, {"lookup", "exit"})) == [f"v{i}" for i in range(300)] + ["quit", "tail"]
    assert list(user_variables(ns, ["lookup", "exit", "quit"])) == [f"v{i}" for i in range(300)] + ["tail"]
    assert user_variables(ns)["lookup"] is tool  # nothing hidden: the tool is a name like any other


def test_names_made_through_globals_are_listed_or_dropped_as_any_other():
    """``globals()[...]`` can bind a name that is no identifier: one with a newline, one that is no string.
    The walk neither breaks on them nor mistakes them for private names."""
    ns = {"a": 1, "_tmp": 2, 3: "three", "x\n_y": 4, "_z\nw": 5, "__builtins__": {}, "_": 6, "b_": 7}
    assert list(user_variables(ns)) == ["a", 3, "x\n_y", "b_"]

# -- one object --------------------------------------------------------------


def test_pandas_dataframe_schema_index_memory_nulls_and_a_few_rows():
    df = pd.DataFrame({
        "region": ["West", "East", None, "North"],
        "revenue": [1.5, np.nan, 3.25, 4.0],
        "Unit Price": [1, 2, 3, 4],
        "day": pd.date_range("2024-01-01", periods=4),
    })
    assert headline(df) == (
        "DataFrame 4 x 4 (region: str, revenue: float64, 'Unit Price': int64, day: datetime64[us])"
    )
    text = describe(df)
    assert "index: RangeIndex 0..3; memory: " in text
    expected_memory = nsmod._bytes(int(df.memory_usage(index=True, deep=False).sum()))
    assert f"memory: {expected_memory}" in text
    assert "nulls: region 1, revenue 1" in text
    rows = text.split("first 3 rows:\n")[1].splitlines()
    assert len(rows) == 4  # header + 3 rows, never the whole frame
    assert rows[1].split() == ["West", "1.5", "1", "2024-01-01", "00:00:00"]
    assert "North" not in text


def test_dataframe_index_kinds():
    by_date = pd.DataFrame({"v": [1, 2]}, index=pd.DatetimeIndex(["2024-01-01", "2024-02-01"], name="when"))
    assert "index: DatetimeIndex (datetime64[us]) 2024-01-01 00:00:00 .. 2024-02-01 00:00:00 named when" in describe(by_date)
    multi = pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"]))
    text = describe(multi)
    assert "index: MultiIndex of 2 levels (k, n)" in text
    assert text.split("first 2 rows:\n")[1].splitlines()[1].split() == ["('a',", "1)", "1"]


def test_null_counts_only_when_cheap(monkeypatch):
    df = pd.DataFrame({"a": [1.0, None, 3.0], "b": [1, 2, 3]})
    assert "nulls: a 1" in describe(df)
    monkeypatch.setattr(nsmod, "NULL_COUNT_MAX_CELLS", 5)  # 3 x 2 = 6 cells: over the limit
    assert "nulls" not in describe(df)


def test_wide_frame_lists_every_column_once_and_samples_few():
    df = pd.DataFrame(np.zeros((3, 50)), columns=[f"feature_{i}" for i in range(50)])
    head = headline(df)
    assert head.startswith("DataFrame 3 x 50 (feature_0: float64, ") and "more)" in head
    text = describe(df)
    columns_line = next(line for line in text.splitlines() if line.startswith("more columns: "))
    assert all(f"feature_{i}: float64" in head + columns_line for i in range(50))
    assert f"feature_{head.count(':') - 1}: float64" not in columns_line  # no column twice
    rows = text.split("first 3 rows:\n")[1].splitlines()
    assert "... +42 columns" in rows[0] and "feature_8" not in rows[0]
    assert all(len(line) <= nsmod.LINE_CHARS + 2 for line in rows)


def test_series_and_index():
    s = pd.Series([10.0, 5.0, 7.5], index=pd.Index(["West", "East", "North"], name="region"), name="revenue")
    assert headline(s) == "Series 'revenue' of 3 (float64)"
    text = describe(s)
    assert "index: Index (str) West .. North named region" in text
    assert "values: West: 10, East: 5, North: 7.5" in text
    assert "nulls: 0" in text
    assert headline(pd.Series(range(100))) == "Series of 100 (int64)"
    assert "first 5 values: 0, 1, 2, 3, 4" in describe(pd.Series(range(100)))
    assert headline(pd.Index(list("abcdefg"))) == "Index of 7 (str): [a, b, c, d, e, ...]"


def test_numpy_arrays_and_scalars():
    a = np.zeros((1000, 3), dtype=np.float32)
    assert headline(a) == "ndarray shape=(1000, 3) dtype=float32 (11.7 KB)"
    assert headline(np.array([1, 2])) == "ndarray shape=(2,) dtype=int64 (16 B) = [1, 2]"
    assert headline(np.int64(7)) == "int64 = 7"
    assert headline(np.float64(2.5)) == "float64 = 2.5"


def test_plain_python_values():
    assert headline(3) == "int = 3"
    assert headline(True) == "bool = True"
    assert headline(None) == "NoneType = None"
    assert headline(2.5) == "float = 2.5"
    assert headline("short") == "str = 'short'"
    long = "lorem ipsum " * 1000
    assert headline(long).startswith("str of 12,000 chars: 'lorem ipsum")
    assert len(headline(long)) < 100
    assert headline(list(range(1000))) == "list of 1,000: [0, 1, 2, 3, 4, ...]"
    assert headline((1, "a")) == "tuple of 2: (1, 'a')"
    assert headline({"lr": 0.1, "layers": [64, 64]}) == "dict of 2: {'lr': 0.1, 'layers': <list of 2>}"
    assert headline({3}) == "set of 1: {3}"
    assert headline(b"\x00" * 100).startswith("bytes of 100 bytes: b'\\x00")
    assert headline(2 ** 100_000) == "int of 100001 bits"  # repr would fail (or be huge)


def test_containers_are_sampled_not_repr_d():
    class NoRepr(list):
        def __repr__(self):
            raise AssertionError("a container item was repr'd whole")

    text = headline([NoRepr(range(10)), pd.DataFrame({"a": range(10)}), "x" * 10_000])
    assert text.startswith("list of 3: [<NoRepr of 10>, <DataFrame 10 x 1 (a: int64)>, 'xxxxxxxxxx")
    assert text.endswith("...]") and len(text) < 120
    assert headline(set(range(1_000_000))) == "set of 1,000,000: {0, 1, 2, 3, 4, ...}"

    class Unordered:  # the set is sampled in its own order: never sorted, never repr'd whole
        def __init__(self, n):
            self.n = n

        def __lt__(self, other):
            raise AssertionError("the set was sorted")

        def __repr__(self):
            return f"U{self.n}"

    class NoReprSet(set):
        def __repr__(self):
            raise AssertionError("the set was repr'd whole")

    text = headline(NoReprSet(Unordered(i) for i in range(1000)))
    assert text.startswith("NoReprSet of 1,000: {U") or text.startswith("set of 1,000: {U"), text
    assert text.endswith(", ...}") and text.count("U") == 5


def test_functions_and_classes_show_signature_and_first_doc_line():
    def clean(df: pd.DataFrame, min_rows: int = 10) -> pd.DataFrame:
        """Drop empty rows.

        Longer explanation that the prompt does not need.
        """
        return df

    class Loader:
        """Loads files."""

        def __init__(self, path: str, sep: str = ","):
            self.path = path

    # (this module uses `from __future__ import annotations`, so annotations are strings)
    assert headline(clean) == (
        "function test_functions_and_classes_show_signature_and_first_doc_line.<locals>.clean"
        "(df: 'pd.DataFrame', min_rows: 'int' = 10) -> 'pd.DataFrame': Drop empty rows."
    )
    assert headline(Loader).endswith("Loader(path: 'str', sep: 'str' = ','): Loads files.")
    assert headline(len) == "function len(obj, /): Return the number of items in a container."


def test_other_objects_type_and_short_repr_and_broken_objects_do_not_break_the_prompt():
    class Point:
        def __init__(self, x):
            self.x = x

        def __repr__(self):
            return f"Point(x={self.x})" + " " * 500

    class Opaque:
        pass

    class Broken:
        def __repr__(self):
            raise RuntimeError("no repr")

    class BadFrame(pd.DataFrame):  # a pandas subclass whose shape raises
        @property
        def shape(self):
            raise ValueError("bad shape")

    assert headline(Point(1)).startswith("Point: Point(x=1)")
    assert len(headline(Point(1))) <= 90
    assert headline(Opaque()) == "Opaque instance"
    assert headline(Broken()) == "Broken: <repr failed: RuntimeError>"
    assert "BadFrame (could not summarise: ValueError: bad shape)" in headline(BadFrame({"a": [1]}))
    text = summarize({"p": Point(2), "b": Broken(), "f": BadFrame({"a": [1]})})
    assert "- b: Broken: <repr failed: RuntimeError>" in text


def test_polars_frames_and_series():
    df = pl.DataFrame({"a": [1, None, 3], "b": ["x", "y", "z"]})
    assert headline(df) == "polars DataFrame 3 x 2 (a: Int64, b: String)"
    text = describe(df)
    assert "memory: ~" in text and "nulls: a 1" in text
    assert text.split("first 3 rows:\n")[1].splitlines()[1].split() == ["1", "x"]
    s = pl.Series("price", [1.5, 2.5])
    assert headline(s) == "polars Series 'price' of 2 (Float64)"
    assert "first values: 1.5, 2.5" in describe(s)


def test_polars_lazy_frame_stays_lazy():
    calls = []

    def boom(series):
        calls.append(1)
        raise RuntimeError("this lazy frame was computed")

    lazy = (
        pl.LazyFrame({"a": [1, 2], "s": ["x", "y"]})
        .with_columns(b=pl.col("a").map_batches(boom, return_dtype=pl.Int64), n=pl.col("s").cast(pl.Int64))
    )
    text = summarize({"lazy": lazy})
    assert "- lazy: polars LazyFrame, lazy (rows not computed), 4 columns (a: Int64, s: String, b: Int64, n: Int64)" in text
    assert calls == []
    with pytest.raises(Exception):  # it really would fail if computed
        lazy.collect()


def test_a_lazy_frame_whose_schema_does_not_resolve_is_still_summarised():
    bad = pl.LazyFrame({"a": [1]}).select(pl.col("missing"))
    assert headline(bad).startswith("polars LazyFrame, lazy (not computed; its schema does not resolve: ")


def test_pyarrow_tables_and_arrays():
    table = pa.table({"id": [1, 2, 3, 4], "name": ["a", None, "c", "d"]})
    assert headline(table) == "pyarrow Table 4 x 2 (id: int64, name: string)"
    text = describe(table)
    assert "nulls: name 1" in text and "memory: " in text
    assert text.split("first 3 rows:\n")[1].splitlines()[2].split() == ["2", "None"]
    assert headline(pa.array([1, None, 3])) == "pyarrow Int64Array of 3 (int64)"
    assert "nulls: 1" in describe(pa.array([1, None, 3]))
    assert headline(pa.chunked_array([[1], [2, 3]])) == "pyarrow ChunkedArray of 3 (int64), 2 chunks"
    assert headline(table.to_batches()[0]).startswith("pyarrow RecordBatch 4 x 2 (id: int64")


def test_pyarrow_dataset_is_not_scanned(tmp_path):
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1, 2], "city": ["a", "b"]}), tmp_path / "part.parquet")
    dataset = pads.dataset(tmp_path)
    (tmp_path / "part.parquet").write_bytes(b"not parquet any more")  # reading the rows would now fail
    assert headline(dataset) == "pyarrow FileSystemDataset, lazy (rows not counted), 2 columns (id: int64, city: string)"
    with pytest.raises(Exception):
        dataset.count_rows()


def test_dask_collections_are_not_computed():
    calls = []
    pdf = pd.DataFrame({"a": [1, 2, 3, 4], "b": ["w", "x", "y", "z"]})

    def boom(part):
        calls.append(1)
        raise RuntimeError("this dask frame was computed")

    ddf = dd.from_pandas(pdf, npartitions=2).map_partitions(boom, meta=pdf)
    series = ddf["a"]
    arr = da.ones((1000, 3), chunks=(100, 3)).map_blocks(boom, dtype=float, meta=np.array((), dtype=float))
    text = summarize({"ddf": ddf, "col": series, "arr": arr})
    assert "- ddf: dask DataFrame, lazy (rows not computed), 2 partitions, 2 columns (a: int64, b: str)" in text
    assert "- col: dask Series 'a' (int64), lazy (rows not computed), 2 partitions" in text
    assert "- arr: dask Array shape=(1000, 3) dtype=float64 chunks=(100, 3), lazy (not computed)" in text
    assert calls == []
    with pytest.raises(RuntimeError):
        ddf.compute()


def test_spark_frames_show_the_schema_and_are_never_counted():
    # pyspark needs a JVM; a stand-in with the same class identity (module and name) and API surface.
    class DataFrame:
        dtypes = [("id", "bigint"), ("city", "string")]

        def count(self):
            raise AssertionError("counted")

        def collect(self):
            raise AssertionError("collected")

        def __repr__(self):
            raise AssertionError("repr")

        def __len__(self):
            raise AssertionError("len")

    DataFrame.__module__ = "pyspark.sql.dataframe"
    assert headline(DataFrame()) == "Spark DataFrame, lazy (rows not counted), 2 columns (id: bigint, city: string)"


# -- a registered summary ----------------------------------------------------


class Portfolio:
    def __init__(self, tickers):
        self.tickers = tickers


class Fund(Portfolio):
    pass


def test_registered_describe_is_used_for_the_prompt_and_the_diff():
    @describe.register(Portfolio)
    def _(p: Portfolio) -> str:
        return f"Portfolio of {len(p.tickers)} positions\nholdings: {', '.join(p.tickers)}"

    fund = Fund(["AAPL", "MSFT"])  # a subclass is covered too
    assert describe(fund) == "Portfolio of 2 positions\nholdings: AAPL, MSFT"
    assert headline(fund) == "Portfolio of 2 positions"
    text = summarize({"fund": fund})
    assert "- fund: Portfolio of 2 positions\n    holdings: AAPL, MSFT" in text
    assert format_diff({"created": ["fund"]}, {"fund": fund}) == "created fund: Portfolio of 2 positions"
    assert headline([fund]) == "list of 1: [<Portfolio of 2 positions>]"

    model = ScriptedModel([fence("mine = Fund(['X'])"), fence("final_answer(1)")])
    agent = CodeAgent(model=model)
    agent.executor.namespace["Fund"] = Fund
    agent.run("t")
    assert model.requests[1][-1]["content"].endswith("created mine: Portfolio of 1 positions")
    # (singledispatch cannot unregister: Portfolio exists only in this module)


def test_function_form_of_register_and_a_failing_summary_falls_back():
    class Order:
        status = "open"

    class Flaky:
        pass

    describe.register(Order, lambda o: f"Order ({o.status})")
    describe.register(Flaky, lambda o: 1 / 0)
    assert headline(Order()) == "Order (open)"
    assert headline(Flaky()) == "Flaky instance (its registered describe failed: ZeroDivisionError)"


# -- the prompt section: budget and ranking -----------------------------------


def test_prompt_has_schemas_not_data_dumps_of_large_frames():
    n = 200_000
    df = pd.DataFrame({"order_id": np.arange(n) + 7_000_000, "amount": np.arange(n) * 0.5,
                       "customer": [f"cust_{i}" for i in range(n)]})
    text = summarize({"orders": df}, task="look at orders")
    assert "- orders: DataFrame 200,000 x 3 (order_id: int64, amount: float64, customer: str)" in text
    assert "index: RangeIndex 0..199999" in text
    assert "first 3 rows:" in text
    assert "7000002" in text and "7000003" not in text  # three rows, not a dump
    assert "cust_100000" not in text and "cust_199999" not in text
    assert len(text) < 1_000


@pytest.mark.parametrize("budget", [60, 120, 250, 500, 1500, 4000])
def test_the_summary_fits_its_budget(budget):
    ns = {f"var_{i}": i for i in range(1000)}
    ns.update({f"frame_{i}": pd.DataFrame(np.zeros((5, 40)), columns=[f"c{j}" for j in range(40)]) for i in range(20)})
    ns.update(np=np, pd=pd)
    text = summarize(ns, budget_tokens=budget)
    assert len(text) <= budget * nsmod.CHARS_PER_TOKEN
    assert "more variables" in text


def test_what_is_cut_is_named_in_one_line():
    ns = {f"var_{i}": "x" * 60 for i in range(100)}
    text = summarize(ns, budget_tokens=300)
    lines = text.splitlines()
    listed = [line for line in lines if line.startswith("- var_")]
    cut = lines[-1]
    assert cut.startswith(f"- and {100 - len(listed)} more variables: ")
    # newest first: the last defined are listed, the oldest are cut
    assert listed[0].startswith("- var_99: ") and "var_0" not in "".join(listed)
    assert cut.endswith(", ...") or cut.endswith("var_0")


def test_names_in_the_task_come_first_then_the_most_recent():
    ns = {"sales": pd.DataFrame({"a": [1]}), "old": 1, "customers": pd.DataFrame({"id": [1]}), "newest": 2}
    names = [line.split(":")[0][2:] for line in summarize(ns, task="Join customers with sales").splitlines()
             if line.startswith("- ")]
    assert names == ["customers", "sales", "newest", "old"]
    assert nsmod.rank(ns) == ["newest", "customers", "old", "sales"]


def test_details_go_to_the_top_ranked_when_the_budget_is_tight():
    wide = pd.DataFrame(np.zeros((3, 30)), columns=[f"col_{i}" for i in range(30)])
    ns = {"target": wide, "other": wide.copy()}
    text = summarize(ns, budget_tokens=350, task="use target")
    assert "- target: DataFrame 3 x 30" in text and "- other: DataFrame 3 x 30" in text
    assert text.count("first 3 rows:") == text.count("more columns: ") == 1
    assert text.index("first 3 rows:") < text.index("- other:")
    assert len(text) <= 1400


def test_a_thousand_variables_are_summarised_quickly():
    ns = {f"v{i}": i for i in range(1000)}
    text = summarize(ns)  # how long it takes: bench/namespace.py
    assert "more variables" in text and len(text) <= 4 * 1500 + 200


def test_summary_of_a_huge_frame_does_not_depend_on_its_rows():
    big = pd.DataFrame({"a": np.zeros(2_000_000), "b": np.arange(2_000_000)})
    text = summarize({"big": big})  # that its time does not grow with the rows: bench/namespace.py
    assert "nulls" not in text  # 4M cells: over NULL_COUNT_MAX_CELLS


# -- {name} in the task ------------------------------------------------------


def test_interpolation_inserts_the_headline_in_place():
    orders = pd.DataFrame({"id": [1, 2], "total": [3.0, 4.0]})
    text, unknown = interpolate(
        "Clean {orders} and join it with {customers}; keep {{orders}}, {{not this}} and {{ and {'a': {'b': 1}}",
        {"orders": orders},
    )
    assert text == (
        "Clean `orders` (DataFrame 2 x 2 (id: int64, total: float64)) and join it with {customers}; "
        "keep {orders}, {not this} and { and {'a': {'b': 1}}"
    )
    assert unknown == ["customers"]


def test_agent_cell_interpolates_names_and_warns_about_unknown_ones(ip, capsys):
    ip.user_ns["orders"] = pd.DataFrame({"id": [1], "total": [2.5]})
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)")])
    ip.run_cell("%%agent -m m\nClean {orders} and join it with {customers}")
    task = first_task(m)
    assert "Clean `orders` (DataFrame 1 x 2 (id: int64, total: float64)) and join it with {customers}" in task
    assert "{customers} is not a variable of this notebook; it is left as written" in capsys.readouterr().err


def test_agent_magic_namespace_budget_is_configurable(ip):
    magics = ip.magics_manager.registry["AgentMagics"]
    for i in range(200):
        ip.user_ns[f"var_{i}"] = i
    ip.user_ns["m"] = m = ScriptedModel([fence("final_answer(1)"), fence("final_answer(2)")])
    try:
        ip.run_cell("%%agent -m m\nt")
        ip.run_line_magic("config", "AgentMagics.namespace_budget = 100")
        ip.run_cell("%%agent -m m --reset\nt")
    finally:
        magics.namespace_budget = magics.trait_defaults("namespace_budget")
    default_section = first_task(m).split("Variables in the notebook")[1]
    small = m.requests[1][-1]["content"].split("Variables in the notebook")[1]
    assert len(small) <= 400 < len(default_section) <= 6000
    assert "more variables" in small


# -- what each step changed --------------------------------------------------


def test_diff_created_rebound_deleted():
    a, b = [1], [2]
    before = snapshot({"a": a, "b": b, "c": 1, "_x": 0, "np": np})
    after = snapshot({"a": a, "b": [2], "d": pd.DataFrame({"region": ["x"]}), "np": np})
    changes = diff(before, after)
    assert changes == {"created": ["d"], "rebound": ["b"], "deleted": ["c"]}
    assert format_diff(changes, {"b": [2], "d": after["d"]}) == (
        "created d: DataFrame 1 x 1 (region: str)\nrebound b: list of 1: [2]\ndeleted c"
    )


def test_a_long_diff_is_bounded():
    changes = {"created": [f"v{i}" for i in range(100)]}
    text = format_diff(changes, {f"v{i}": i for i in range(100)})
    assert text.count("\n") == nsmod.DIFF_MAX_LINES
    assert text.endswith("... and 70 more changes")


def test_each_steps_diff_ends_the_observation_and_reaches_the_model_and_the_trace():
    model = ScriptedModel([
        fence("import pandas as pd\ntop5 = pd.DataFrame({'region': ['a'], 'revenue': [1.0], 'growth': [0.1]})\n"
              "sales = sales.head(1)\ndel scratch\nprint('x' * 30_000)"),
        fence("final_answer(top5)"),
    ])
    # rebinding and deleting the user's data needs a person or the 'mutate_data' grant
    agent = CodeAgent(model=model, max_observation_chars=2_000, policy=Policy(allow={"mutate_data"}))
    agent.executor.namespace.update(sales=pd.DataFrame({"region": ["a", "b"]}), scratch=[1, 2, 3])
    agent.run("t")
    observation = model.requests[1][-1]["content"]
    diff_text = (
        "created pd: module pandas\n"
        "created top5: DataFrame 1 x 3 (region: str, revenue: float64, growth: float64)\n"
        "rebound sales: DataFrame 1 x 1 (region: str)\n"
        "deleted scratch"
    )
    assert "characters cut] ..." in observation
    assert observation.endswith("xxx\nVariables changed:\n" + diff_text)
    step = agent.memory.action_steps[0]
    assert step.changes == {"created": ["pd", "top5"], "rebound": ["sales"], "deleted": ["scratch"]}
    assert step.changes_text == diff_text
    # the run's prompt told the model what lived in the namespace before the run
    assert "- sales: DataFrame 2 x 1 (region: str)" in first_task(model)
    assert "- scratch: list of 3: [1, 2, 3]" in first_task(model)


def test_the_diff_survives_the_memory_round_trip():
    from smol_magic import AgentMemory

    agent = CodeAgent(model=ScriptedModel([fence("x = 1"), fence("final_answer(x)")]))
    agent.run("t")
    again = AgentMemory.from_json(agent.memory.to_json())
    assert again.action_steps[0].changes_text == "created x: int = 1"


def test_modules_are_not_described_in_depth():
    text = summarize({"np": np, "pd": pd, "types": types})
    assert text == "Variables in the notebook (live objects: use them directly):\n" \
                   "- imported modules: np (numpy), pd (pandas), types"
    # a module the task names is still listed with the modules, not ranked first among the variables
    text = summarize({"np": np, "sales": [1, 2], "pd": pd, "total": 3}, task="with np and pd, sum sales")
    assert text.splitlines()[1:] == ["- sales: list of 2: [1, 2]", "- total: int = 3",
                                     "- imported modules: np (numpy), pd (pandas)"]


# -- what an action changed, however it changed it (namespace.Bindings, both executors) ---------------

CHANGED_ELSEWHERE = '''
def helper():
    global made_in_function, kept
    made_in_function = 1
    kept = [2]
helper()
globals()["made_by_globals"] = 3
globals()["rebound_by_globals"] = 4
del deleted_by_del
globals().pop("deleted_by_pop")
exit = "the user's own exit now"
'''


def _start(ns):
    ns.update(kept=[1], rebound_by_globals=0, deleted_by_del=5, deleted_by_pop=6, untouched=[7])


def _check_changes(result, ns):
    assert result.error is None, result.error
    changes = result.changes
    # in the namespace's order: a hidden name rebound (exit) keeps its place
    assert sorted(changes["created"]) == ["exit", "helper", "made_by_globals", "made_in_function"]
    assert changes["rebound"] == ["kept", "rebound_by_globals"]
    assert changes["deleted"] == ["deleted_by_del", "deleted_by_pop"]
    assert result.previous == {"kept": [1], "rebound_by_globals": 0, "deleted_by_del": 5, "deleted_by_pop": 6}
    assert "untouched" not in str(changes)


def test_changes_made_through_functions_globals_and_del_are_seen_by_the_plain_executor():
    from smol_magic.core.execution import LocalPythonExecutor

    executor = LocalPythonExecutor()
    _start(executor.namespace)
    executor.namespace["exit"] = hidden_exit = object()
    executor.send_tools({"exit": hidden_exit})  # hidden while it holds the tool: rebinding it makes it the user's
    _check_changes(executor.execute(CHANGED_ELSEWHERE, timeout=None), executor.namespace)


def test_changes_made_through_functions_globals_and_del_are_seen_in_ipython(ip):
    from smol_magic.jupyter.kernel_executor import KernelExecutor

    _start(ip.user_ns)
    executor = KernelExecutor(ip)
    result = executor.execute(CHANGED_ELSEWHERE, timeout=None)
    _check_changes(result, ip.user_ns)
    assert not any(name.startswith("_") for kind in result.changes.values() for name in kind)  # IPython's _iN, _


def test_the_guards_tree_is_what_runs_and_the_cell_is_still_in_history(ip):
    """The executor runs the tree it is given (no second parse) through IPython's cell path: In, history, hooks."""
    import ast

    from smol_magic.jupyter.kernel_executor import KernelExecutor

    code = "answer = 1"
    tree = ast.parse(code)
    tree.body[0].value = ast.Constant(2)  # a tree that differs from the text: proof that the tree ran
    ast.fix_missing_locations(tree)
    fired = []
    ip.events.register("post_run_cell", fired.append)
    try:
        result = KernelExecutor(ip).execute(code, timeout=None, tree=tree)
    finally:
        ip.events.unregister("post_run_cell", fired.append)
    assert result.error is None and ip.user_ns["answer"] == 2
    assert ip.user_ns["In"][-1] == code and fired and fired[-1].success
    assert "ast_parse" not in vars(ip.compile)  # IPython's own parser is back for the user's cells
    ip.run_cell("after = 3")
    assert ip.user_ns["after"] == 3


def test_an_action_that_runs_no_other_code_is_diffed_by_its_own_names_only():
    import ast

    from smol_magic.core.execution import LocalPythonExecutor, static_bindings

    assert static_bindings(ast.parse("x = 1\ny, z = -2, [x, {'k': 'v'}]\ndel old\npass")) == ["x", "y", "z", "old"]
    for code in ("x = f()", "x = a + 1", "a, b = pair", "x = d['k']", "x = o.attr", "x", "x = [*xs]",
                 "x: int = 1", "x += 1", "import os", "def f(): pass", "x = {k: 1}", "o.a = 1", "d[0] = 1"):
        assert static_bindings(ast.parse(code)) is None, code
    executor = LocalPythonExecutor({"old": 1, "kept": [1]})
    code = "x = 1\ny = kept\ndel old"
    result = executor.execute(code, timeout=None, tree=ast.parse(code))
    assert result.changes == {"created": ["x", "y"], "rebound": [], "deleted": ["old"]}
    assert result.previous == {"old": 1}


def test_a_hook_of_the_users_that_binds_a_name_is_seen_even_around_a_trivial_action(ip):
    """Unknown code around the action (a user's post_run_cell hook) makes the executor compare every name."""
    import ast

    from smol_magic.jupyter.kernel_executor import KernelExecutor

    def hook(result):
        ip.user_ns["set_by_hook"] = object()

    ip.events.register("post_run_cell", hook)
    try:
        result = KernelExecutor(ip).execute("x = 1", timeout=None, tree=ast.parse("x = 1"))
    finally:
        ip.events.unregister("post_run_cell", hook)
    assert result.changes["created"] == ["x", "set_by_hook"]


def test_the_listing_follows_rebinding_and_registrations_between_runs():
    """The listing is built again at every run: a name rebound to another value, or a summary registered
    for its type, shows in the next listing."""
    from smol_magic.context import namespace as nsm

    ns = {"rate": 0.25, "label": "north"}
    first = nsm.summarize(ns)
    assert "rate: float = 0.25" in first and "label: str = 'north'" in first
    ns["rate"], ns["label"] = 0.5, "south"
    second = nsm.summarize(ns)
    assert "rate: float = 0.5" in second and "label: str = 'south'" in second

    ns["regions"], ns["limits"] = ["north", "west"], {"low": 0.0}
    assert "regions: list of 2: ['north', 'west']" in nsm.summarize(ns)
    ns["regions"].append("east")  # changed in place, and an equal value of another look
    ns["regions"][0], ns["limits"]["low"] = "south", -0.0
    changed = nsm.summarize(ns)
    assert "regions: list of 3: ['south', 'west', 'east']" in changed and "limits: dict of 1: {'low': -0.0}" in changed

    class Percent(float):
        pass

    ns["rate"] = Percent(0.5)
    nsm.describe.register(Percent, lambda p: f"{p * 100:.0f} percent\nof the quarter")
    third = nsm.summarize(ns)
    assert "rate: 50 percent" in third and "of the quarter" in third
