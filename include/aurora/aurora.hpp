// Aurora: an embeddable JSON document database with a real-time change feed (umbrella header).
#pragma once

#include <aurora/change_event.hpp>
#include <aurora/consume.hpp>
#include <aurora/database.hpp>
#include <aurora/errc.hpp>
#include <aurora/filter.hpp>
#include <aurora/options.hpp>
#include <aurora/query.hpp>
#include <aurora/recv_result.hpp>
#include <aurora/snapshot.hpp>
#include <aurora/start.hpp>
#include <aurora/subscription.hpp>
#include <aurora/transaction.hpp>
#include <aurora/transition.hpp>
#include <aurora/value.hpp>
#include <aurora/watch.hpp>
