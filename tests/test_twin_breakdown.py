"""The per-source score splits images whose group spans both sources from independent ones."""

from benchmarks.twin_breakdown import breakdown

SHA = "0" * 64


def test_cells_follow_the_groups_not_the_folders(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,sha256,label,group,split,source,class\n"
        f"no/no1.jpg,{SHA},no,1,test,br35h,no\n"
        f"Testing/notumor/a.jpg,{SHA},no,1,test,nickparvar,notumor\n"
        f"Testing/notumor/b.jpg,{SHA},no,2,test,nickparvar,notumor\n"
        f"Testing/notumor/c.jpg,{SHA},no,3,test,nickparvar,notumor\n")
    preds = tmp_path / "p.csv"
    preds.write_text("path,label,p_tumour,predicted,correct,source\n"
                     "no/no1.jpg,no,0.1,no,1,br35h\n"
                     "Testing/notumor/a.jpg,no,0.2,no,1,nickparvar\n"
                     "Testing/notumor/b.jpg,no,0.9,yes,0,nickparvar\n"
                     "Testing/notumor/c.jpg,no,0.1,no,1,nickparvar\n")
    cells = {(c["source"], c["group"]): (c["correct"], c["n"]) for c in breakdown(preds, manifest)}
    assert cells == {("br35h", "spans both sources"): (1, 1), ("nickparvar", "spans both sources"): (1, 1),
                     ("nickparvar", "one source only"): (1, 2)}
