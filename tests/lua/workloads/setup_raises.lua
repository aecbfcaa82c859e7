return {
  iteration = function() end,
  setup = function() error("cannot reach the database") end,
}
