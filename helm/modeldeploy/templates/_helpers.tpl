{{/* Names, labels and the RBAC rule sets shared by the templates. */}}

{{- define "modeldeploy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldeploy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modeldeploy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modeldeploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "modeldeploy.labels" -}}
helm.sh/chart: {{ include "modeldeploy.chart" . }}
{{ include "modeldeploy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: modeldeploy
{{- end }}

{{- define "modeldeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modeldeploy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository[:tag][@digest]; the digest wins for pulling when both are set. */}}
{{- define "modeldeploy.imageRef" -}}
{{- $img := index . 0 }}{{- $appVersion := index . 1 }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default $appVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* Peering is on when asked for or when several replicas must not all work. */}}
{{- define "modeldeploy.peering" -}}
{{- if or .Values.peering.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* The namespaces the operator watches in namespaced mode (deduplicated). */}}
{{- define "modeldeploy.watchNamespaces" -}}
{{- if and (not .Values.watch.allNamespaces) (not .Values.watch.namespaces) }}
{{- fail "watch.namespaces must list at least one namespace when watch.allNamespaces is false" }}
{{- end }}
{{- .Values.watch.namespaces | uniq | toJson }}
{{- end }}

{{/*
Rules the operator needs inside every namespace it watches. Each rule is
here because the operator uses it; see docs/contracts.md and the
RBAC table in tests/shipping/test_chart_rbac.py.
*/}}
{{- define "modeldeploy.rules.workloads" -}}
# The resource it reconciles: Kopf patches finalizers and its progress
# annotations on the object, the operator patches status only.
- apiGroups: ["modeldeploy.io"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["modeldeploy.io"]
  resources: ["modeldeployments/status"]
  verbs: ["get", "patch"]
# Children carry an ownerReference with blockOwnerDeletion, which clusters
# with the OwnerReferencesPermissionEnforcement admission plugin allow only
# to who may update the owner's finalizers.
- apiGroups: ["modeldeploy.io"]
  resources: ["modeldeployments/finalizers"]
  verbs: ["update"]
# Owned objects: predictor revisions, the router, track Services, and the
# router's ServiceAccount + Role + RoleBinding.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# spec.predictor.autoscaling: one HorizontalPodAutoscaler per active revision.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
# The builtin router's PodDisruptionBudget (server-side applied: create + patch).
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch"]
# Crash-loop detection of the revisions it rolls out.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Held so that it may grant them to the router's Role (RBAC forbids granting
# what one does not hold; no `escalate` or `bind` verb is needed then).
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch"]
# Every transition is an Event.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rbac.gatewayAPI }}
# Traffic provider `gatewayapi`: move the HTTPRoute backend weights.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}

{{/* Kopf peering keep-alives: read peers, patch its own entry in status. */}}
{{- define "modeldeploy.rules.peering" -}}
- apiGroups: ["kopf.dev"]
  resources: [{{ .resource | quote }}]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}

{{/*
Kopf's run-time observation (read-only): CRDs always; namespaces only when it
watches a list of namespaces (cluster-wide mode never lists them).
*/}}
{{- define "modeldeploy.rules.discovery" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if not .Values.watch.allNamespaces }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}
