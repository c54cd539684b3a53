// Package metastoretest helps test code that uses the metastore.
//
//   - Store is an in-memory metastore with the semantics of *metastore.Store
//     that the broker, the group coordinator and the controller rely on
//     (revisions, compare-and-swap with the same error sentinels, watches
//     and follows from a revision, broker registrations, the controller
//     election), for unit tests that are not about etcd.
//   - Run is the conformance suite that pins those semantics; it runs
//     against Store and against *metastore.Store over etcd, so the fake
//     cannot drift from the real thing.
//   - StartEtcd and NewEtcdStore start an embedded etcd for the tests that
//     are about etcd.
package metastoretest
