return { iteration = function(ctx)
