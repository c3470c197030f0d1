def test_build_benchmark_outputs_inputs_and_metadata(tiny_run):
    assert tiny_run["raw_inputs"]["inputs"].shape == (520, 3, 28, 28)
    assert list(tiny_run["raw_metadata"].columns) == ["sample_id", "split", "y", "a", "group"]


def test_manifest_has_digests_source_sizes_and_group_counts(tiny_run, parameters):
    manifest = tiny_run["dataset_manifest"]
    assert len(manifest["digest"]) == 64 and manifest["name"] == "colored_mnist"
    assert len(manifest["class_label_digest"]) == 64 and manifest["class_label_digest"] != manifest["digest"]
    assert manifest["source"] == parameters["data_versioning"]["source"]
    assert (manifest["n_classes"], manifest["n_attributes"], manifest["n_groups"]) == (2, 2, 4)
    assert sum(manifest["group_counts"]["train"].values()) == 240
