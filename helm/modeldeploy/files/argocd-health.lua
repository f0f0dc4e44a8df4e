-- Argo CD health check for modeldeploy.io/ModelDeployment.
-- Install it under resource.customizations.health.modeldeploy.io_ModelDeployment
-- in the argocd-cm ConfigMap (see docs/gitops.md). Argo CD runs Lua 5.1
-- (gopher-lua); this script uses nothing beyond it.
--
-- Healthy     the desired model version is stable and serves all traffic
-- Progressing the operator has not seen this generation yet, or a rollout
--             (shadow, canary, bake) is under way
-- Suspended   the rollout is paused and waits for a person
-- Degraded    the candidate was rolled back, or the first revision failed
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(status)
  local text = ""
  if status.candidate ~= nil and status.candidate.version ~= nil then
    text = "candidate " .. status.candidate.version
  end
  if status.canaryWeight ~= nil and status.phase == "Canary" then
    text = text .. " at " .. tostring(status.canaryWeight) .. "% of traffic"
  end
  return text
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the ModelDeployment"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local degraded = condition(status, "Degraded")
local ready = condition(status, "Ready")
local phase = status.phase

if phase == "RolledBack" or phase == "Failed" then
  hs.status = "Degraded"
  if degraded ~= nil and degraded.message ~= nil and degraded.message ~= "" then
    hs.message = degraded.message
  else
    hs.message = "Rollout " .. phase
  end
  return hs
end

-- Before the Degraded condition: a rollout paused on inconclusive analysis is
-- also marked Degraded by the operator, but nothing failed; it waits for a
-- person, which is what Argo CD's Suspended means.
if phase == "Paused" then
  hs.status = "Suspended"
  local reason = "paused"
  if status.paused ~= nil then
    reason = status.paused.reason or reason
    if status.paused.message ~= nil and status.paused.message ~= "" then
      reason = reason .. ": " .. status.paused.message
    end
  end
  hs.message = "Rollout paused (" .. reason .. ")"
  return hs
end

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.message or degraded.reason or "Degraded"
  return hs
end

if phase == "Succeeded" then
  if ready == nil or ready.status == "True" then
    hs.status = "Healthy"
    local version = "the desired version"
    if status.stable ~= nil and status.stable.version ~= nil then
      version = "version " .. status.stable.version
    end
    hs.message = "Serving " .. version
    return hs
  end
  hs.status = "Progressing"
  hs.message = (ready.message ~= nil and ready.message ~= "") and ready.message or "Waiting for Ready"
  return hs
end

if phase == "Pending" or phase == "Progressing" or phase == "Shadow" or phase == "Canary" then
  hs.status = "Progressing"
  local text = describe(status)
  if text ~= "" then
    hs.message = phase .. ": " .. text
  else
    hs.message = phase
  end
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown phase " .. tostring(phase)
return hs
