import pytest

from omicslake.tiers import Center, Network, demo_network


def test_scope_is_own_center_and_below():
    net = demo_network()
    assert net.visible_centers("NAT") == set(net.centers)
    assert net.visible_centers("PRV-S") == {"PRV-S", "CTY-S1", "CTY-S2", "CNT-S1A", "CNT-S1B", "CNT-S2A"}
    assert net.visible_centers("CNT-S1A") == {"CNT-S1A"}
    assert "'CTY-N1'" in net.scope_filter("PRV-N") and "'PRV-S'" not in net.scope_filter("PRV-N")


def test_all_four_tiers_present():
    assert {c.tier for c in demo_network().centers.values()} == {"national", "provincial", "city", "county"}


@pytest.mark.parametrize(
    "centers, message",
    [
        ([Center("A", "a", "national"), Center("B", "b", "city", "Z")], "parent 'Z' is unknown"),
        ([Center("A", "a", "national"), Center("B", "b", "county", "A"), Center("C", "c", "city", "B")],
         "cannot sit under"),
        ([Center("A", "a", "provincial")], "only the national center"),
        ([Center("A", "a", "national"), Center("B", "b", "hamlet", "A")], "tier 'hamlet'"),
    ],
)
def test_invalid_networks_fail(centers, message):
    with pytest.raises(ValueError, match=message):
        Network(centers)
