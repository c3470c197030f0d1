def test_build_benchmark_outputs_inputs_and_metadata(tiny_run):
    assert tiny_run["raw_inputs"]["inputs"].shape == (520, 3, 28, 28)
    assert list(tiny_run["raw_metadata"].columns) == ["sample_id", "split", "y", "a", "group"]


def test_manifest_has_digest_source_and_group_counts(tiny_run, parameters):
    manifest = tiny_run["manifest"]
    assert len(manifest["digest"]) == 64 and manifest["name"] == "colored_mnist"
    assert manifest["source"] == parameters["data_versioning"]["source"]
    assert sum(manifest["group_counts"]["train"].values()) == 240
