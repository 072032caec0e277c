// Durability: how much of a durable database's recent commits survive a crash or a power loss.
// The enum lives in the core's options.hpp (so that Options can hold it); this header is kept
// for the code that includes it.
#pragma once

#include <aurora/options.hpp>
