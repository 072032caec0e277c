// Watch: a snapshot of a collection and the subscription that goes on exactly after it.
#pragma once

#include <aurora/snapshot.hpp>
#include <aurora/subscription.hpp>

namespace aurora {

/// What `Database::watch` returns: `auto [snap, sub] = db.watch("orders", filter);`.
///
/// Apply `snapshot.documents`, then every event `subscription` delivers: the result is the
/// current state of the documents in the filter's view, with nothing missed and nothing
/// applied twice (the subscription starts at `Start::after(snapshot.sequence)`).
struct Watch {
  Snapshot snapshot;          ///< the documents in the filter's view, sorted by id, and the sequence they reflect
  Subscription subscription;  ///< every event after `snapshot.sequence` that passes the filter
};

}  // namespace aurora
